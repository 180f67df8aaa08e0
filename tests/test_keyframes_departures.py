"""Where the key-frame stage departed from its references (issue 28), each pinned by a test: ControlNet's
window in the colour-correction reference, and the annotators (HED, depth) under the offload policy.
(The masked SDEdit's clean last step is pinned in test_keyframes.py beside the other matte tests.)"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from _tiny_sd import H, W, conds, frame, make_cfg, no_occlusion, save_tiny_depth_model, zero_flow  # noqa: E402
from rerender.keyframes import constraints, models  # noqa: E402
from rerender.keyframes.sampler import KeyframeSampler  # noqa: E402


def _controlnet_steps(sampler: KeyframeSampler):
    """A list that receives the sampler's step index at every ControlNet call, and the hook's handle."""
    steps: list[int] = []
    net = sampler.c.controlnets[0]
    handle = net.register_forward_hook(lambda *a: steps.append(sampler.state.step))
    return steps, handle


@pytest.mark.parametrize("strength, window", [(0.75, (0.0, 1.0)), (0.5, (0.0, 1.0)), (0.75, (0.0, 0.5))])
def test_controlnet_window_is_sized_for_the_schedule_that_runs(tiny_model, comps, strength, window):
    """The colour-correction reference runs every step from noise: its ControlNet window covers the same
    fraction of those steps as the keys' window covers of theirs (it was sized for the SDEdit steps)."""
    steps = 8
    s = KeyframeSampler(comps, make_cfg(tiny_model, steps=steps, strength=strength, control_window=window))
    img = frame(3)
    calls, handle = _controlnet_steps(s)
    try:
        s.generate(img, conds(img))
        reference = sorted(set(calls))
        calls.clear()
        s.render(img, conds(img))
        keys = sorted(set(calls))
    finally:
        handle.remove()
    n_keys = len(s.timesteps)
    assert reference == list(constraints.window_steps(steps, window))
    assert keys == list(constraints.window_steps(n_keys, window))
    if window == (0.0, 1.0):  # the whole schedule, one ControlNet call per step (no CFG batch split)
        assert reference == list(range(steps)) and keys == list(range(n_keys))


def _annotator_uses(monkeypatch, comps):
    """For every call of an annotator network: (which, the offload group active while it runs)."""
    from rerender.keyframes import controls

    uses: list[tuple[str, object]] = []
    real_hed = controls.HED.forward

    def hed_forward(net, x):
        uses.append(("hed", comps.offloader.active if comps.offloader is not None else None, net))
        return real_hed(net, x)

    monkeypatch.setattr(controls.HED, "forward", hed_forward)
    real_depth = controls.DepthEstimator.__call__

    def depth_call(est, image):
        out = real_depth(est, image)  # nothing else runs in between: its group is still the active one
        uses.append(("depth", comps.offloader.active if comps.offloader is not None else None, est.model))
        return out

    monkeypatch.setattr(controls.DepthEstimator, "__call__", depth_call)
    return uses


def test_annotators_follow_the_offload_policy(tiny_model, tmp_path, monkeypatch):
    """With offload="model" the HED and the depth estimator are offload groups of their own: each runs
    while its group is the one on the device, and the UNet's group runs after them (moving them back
    to CPU memory), so no annotator stays on the accelerator between uses."""
    from rerender.keyframes.stage import render_keys

    model, cn = tiny_model
    depth = tmp_path / "depth"
    save_tiny_depth_model(depth)
    off = models.load_components(models.ModelSpec(str(model), [str(cn), str(cn)], device="cpu", offload="model"))
    cfg = make_cfg(tiny_model, steps=4, control=["hed", "depth"], controlnet=[str(cn), str(cn)],
                   depth_model=str(depth), offload="model")
    seen_groups = []
    real_activate = models.GroupOffload.activate

    def activate(self, name):
        seen_groups.append(name)
        return real_activate(self, name)

    monkeypatch.setattr(models.GroupOffload, "activate", activate)
    uses = _annotator_uses(monkeypatch, off)
    frames = {0: frame(1), 3: frame(2)}
    render_keys(frames.__getitem__, [0, 3], tmp_path / "keys", cfg, flow=zero_flow, occlusion=no_occlusion,
                components=off)
    hed_uses = [u for u in uses if u[0] == "hed"]
    assert len(hed_uses) == 2  # one condition image per key
    groups = off.offloader.groups
    for _, active, net in hed_uses:
        assert active is not None and net in groups[active] and active not in ("text", "denoise", "vae")
    depth_uses = [u for u in uses if u[0] == "depth"]
    assert len(depth_uses) == 2 and depth_uses[0][2] is depth_uses[1][2]
    depth_group, depth_model = depth_uses[0][1], depth_uses[0][2]
    assert depth_group is not None and depth_model in groups[depth_group]
    assert depth_group not in ("text", "denoise", "vae", hed_uses[0][1])
    # the denoising group runs after the last annotator use (and moves the annotators to CPU memory)
    hed_group = hed_uses[0][1]
    annotator_positions = [n for n, g in enumerate(seen_groups) if g in (hed_group, depth_group)]
    assert annotator_positions and "denoise" in seen_groups[annotator_positions[-1]:]
    # every annotator parameter is in CPU memory once the stage is done
    for net in (hed_uses[0][2], depth_model):
        assert all(p.device.type == "cpu" for p in net.parameters())


def test_sequential_offload_streams_the_annotators(tiny_model, tmp_path):
    """offload="sequential": the annotators get accelerate's layer-by-layer hooks like the other models,
    and give the same condition image as without offload."""
    from rerender.keyframes import controls
    from rerender.keyframes.conditions import condition_images

    model, cn = tiny_model
    off = models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu", offload="sequential"))
    cfg = make_cfg(tiny_model, control=["hed"], offload="sequential")
    img = frame(4)
    offloaded = condition_images(cfg, img, 0, "cpu", off)[0]
    assert np.array_equal(offloaded, controls.hed(img, "cpu"))
    net = off.annotators["hed"]
    assert all(hasattr(m, "_hf_hook") for m in net.modules() if list(m.parameters(recurse=False)))
