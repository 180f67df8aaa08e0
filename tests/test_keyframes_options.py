"""Options of the key-frame stage: ControlNet and cross-frame windows, FreeU, prompt schedules, low-VRAM
modes (tiny random models, CPU)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from _tiny_sd import H, W, conds, frame, make_cfg, no_occlusion, zero_flow  # noqa: E402
from rerender import config as rconfig  # noqa: E402
from rerender.keyframes import attention, models  # noqa: E402
from rerender.keyframes.config import KeyframeConfig  # noqa: E402
from rerender.keyframes.sampler import Geometry, KeyframeSampler  # noqa: E402


def test_control_window(tiny_model, comps):
    img = frame(1)
    full = KeyframeSampler(comps, make_cfg(tiny_model, steps=8, strength=1.0)).render(img, conds(img), keep_memory=False)
    assert full.trace["control"] == list(range(8))
    none = KeyframeSampler(comps, make_cfg(tiny_model, steps=8, strength=1.0, control_window=(0.0, 0.0))).render(
        img, conds(img), keep_memory=False)
    assert none.trace["control"] == []
    # no ControlNet at all is the same as a ControlNet with conditioning scale 0
    zero = KeyframeSampler(comps, make_cfg(tiny_model, steps=8, strength=1.0, control_strength=[0.0])).render(
        img, conds(img), keep_memory=False)
    assert torch.equal(none.latent, zero.latent)
    half = KeyframeSampler(comps, make_cfg(tiny_model, steps=8, strength=1.0, control_window=(0.0, 0.5))).render(
        img, conds(img), keep_memory=False)
    assert half.trace["control"] == [0, 1, 2, 3]
    assert (half.latent - full.latent).abs().max() > 1e-3 and (half.latent - none.latent).abs().max() > 1e-3


def test_cross_frame_window(tiny_model, comps):
    img, other = frame(2), frame(3)
    geo = Geometry.identity(H, W)
    s = KeyframeSampler(comps, make_cfg(tiny_model, steps=8, strength=1.0, cross_window=(0.25, 0.75), pixel_fusion=False, shape_fusion=False, adain=False))
    a = s.render(other, conds(other))
    # caches are kept only for the window's steps
    assert {step for _, step in a.memory.attn} == {2, 3, 4, 5}
    calls = s.state.calls
    res = s.render(img, conds(img), a.memory, a.memory, geo)
    assert res.trace["cross"] == [2, 3, 4, 5]
    assert s.state.calls - calls == 4 * len(s.attn_layers)  # the processors attended to references 4 steps
    # an empty window is plain self-attention everywhere: the same as switching the constraint off
    s0 = KeyframeSampler(comps, make_cfg(tiny_model, steps=8, strength=1.0, cross_window=(0.0, 0.0), pixel_fusion=False, shape_fusion=False, adain=False))
    a0 = s0.render(other, conds(other))
    assert not a0.memory.attn
    r0 = s0.render(img, conds(img), a0.memory, a0.memory, geo)
    off = KeyframeSampler(comps, make_cfg(tiny_model, steps=8, strength=1.0, cross_frame_attention=False, pixel_fusion=False, shape_fusion=False, adain=False))
    a_off = off.render(other, conds(other))
    r_off = off.render(img, conds(img), a_off.memory, a_off.memory, geo)
    assert torch.allclose(r0.latent, r_off.latent, atol=1e-5)
    # (attention barely moves a tiny random UNet's output, but more than float noise)
    assert (res.latent - r0.latent).abs().max() > 1e-4


def test_freeu_works_with_cross_frame_attention(tiny_model, comps):
    img, other = frame(4), frame(5)
    geo = Geometry.identity(H, W)

    def key(**kw):
        s = KeyframeSampler(comps, make_cfg(tiny_model, steps=4, pixel_fusion=False, **kw))
        a = s.render(other, conds(other))
        calls = s.state.calls
        r = s.render(img, conds(img), a.memory, a.memory, geo)
        assert s.state.calls > calls  # cross-frame attention ran alongside FreeU
        assert all(isinstance(comps.unet.attn_processors[n], attention.CrossFrameAttnProcessor) for n in s.attn_layers)
        return r.latent

    base = key()
    neutral = key(freeu=[1.0, 1.0, 1.0, 1.0])  # unit factors: FreeU's FFT round trip only
    assert torch.allclose(neutral, base, atol=1e-4)
    strong = key(freeu=[1.5, 1.6, 0.9, 0.2])
    assert (strong - base).abs().max() > 1e-2
    assert torch.equal(key(), base)  # a later sampler without FreeU switches it off again
    with pytest.raises(ValueError, match="freeu"):
        make_cfg(tiny_model, freeu=[1.5, 1.6])


def test_prompt_schedule(tiny_model, comps, tmp_path):
    from rerender.media import read_image
    from rerender.keyframes.stage import render_keys

    cfg = make_cfg(tiny_model, steps=4, prompt="a cat", prompt_schedule=["6:a dog", "9:the end"],
                   negative_prompt_schedule=["3:blurry"])
    assert cfg.prompts_for(0) == ("a cat, best quality, extremely detailed", cfg.negative_prompt)
    assert cfg.prompts_for(3) == ("a cat, best quality, extremely detailed", "blurry")
    assert cfg.prompts_for(8)[0].startswith("a dog") and cfg.prompts_for(9)[0].startswith("the end")
    frames = {i: frame(10 + i) for i in (0, 3, 6)}
    render_keys(frames.__getitem__, [0, 3, 6], tmp_path / "sched", make_cfg(tiny_model, steps=4, prompt_schedule=["6:a dog"]),
                flow=zero_flow, occlusion=no_occlusion, components=comps)
    render_keys(frames.__getitem__, [0, 3, 6], tmp_path / "plain", make_cfg(tiny_model, steps=4),
                flow=zero_flow, occlusion=no_occlusion, components=comps)
    same = [np.array_equal(read_image(tmp_path / "sched" / f"{i:04d}.png"), read_image(tmp_path / "plain" / f"{i:04d}.png"))
            for i in (0, 3, 6)]
    assert same == [True, True, False]  # only the key at or after frame 6 changes
    for bad in (["a dog"], ["-1:a dog"], ["x:a dog"], ["4:a", "4:b"]):
        with pytest.raises(rconfig.ConfigError, match="prompt_schedule"):
            rconfig.load(KeyframeConfig, None, {"prompt_schedule": bad})


def test_non_finite_numbers_are_rejected():
    for key, value in (("guidance_scale", float("nan")), ("fusion_strength", float("inf")),
                       ("control_window", [0.0, float("nan")]), ("freeu", [1.0, 1.0, float("inf"), 1.0])):
        with pytest.raises(rconfig.ConfigError, match=key):
            rconfig.load(KeyframeConfig, None, {key: value})


@pytest.mark.parametrize("mode", ["model", "sequential"])
def test_offload_modes_give_the_same_frames(tiny_model, comps, mode):
    model, cn = tiny_model
    img, other = frame(6), frame(7)
    geo = Geometry.identity(H, W)
    cfg = make_cfg(tiny_model, steps=4)
    ref = KeyframeSampler(comps, cfg)
    a_ref = ref.render(other, conds(other))
    k_ref = ref.render(img, conds(img), a_ref.memory, a_ref.memory, geo)
    off = models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu", offload=mode))
    s = KeyframeSampler(off, make_cfg(tiny_model, steps=4, offload=mode))
    assert s.cache_device == torch.device("cpu") and off.offload == mode
    a = s.render(other, conds(other))
    k = s.render(img, conds(img), a.memory, a.memory, geo)
    assert torch.equal(a.latent, a_ref.latent) and torch.equal(k.latent, k_ref.latent)
    if mode == "model":
        # one switch per model group: UNet and ControlNet stay together through each pass. Anchor: prompt,
        # encode, one pass, decode; key: rough pass, decode (+ E*'s encodes/decodes), fused pass, decode
        assert off.offloader.switches == ["text", "vae", "denoise", "vae"] + ["denoise", "vae"] * 2
    else:
        assert all(hasattr(m, "_hf_hook") for m in off.unet.modules() if list(m.parameters(recurse=False)))


def test_vae_tiling_takes_the_tiled_path(tiny_model, comps, monkeypatch):
    vae = comps.vae
    calls = {"enc": 0, "dec": 0}
    enc, dec = vae._tiled_encode, vae.tiled_decode
    monkeypatch.setattr(vae, "_tiled_encode", lambda *a, **k: calls.__setitem__("enc", calls["enc"] + 1) or enc(*a, **k))
    monkeypatch.setattr(vae, "tiled_decode", lambda *a, **k: calls.__setitem__("dec", calls["dec"] + 1) or dec(*a, **k))
    img = frame(8, h=64, w=96)  # wider than the tiny VAE's 64 px tile
    res = KeyframeSampler(comps, make_cfg(tiny_model, steps=2, vae_tiling=True)).render(img, conds(img), keep_memory=False)
    assert calls["enc"] >= 1 and calls["dec"] >= 1 and res.image.shape == (64, 96, 3)
    untiled = KeyframeSampler(comps, make_cfg(tiny_model, steps=2)).render(img, conds(img), keep_memory=False)
    assert not vae.use_tiling and calls["enc"] == 1 and calls["dec"] == 1  # switched off again
    # tiles are blended, so the result is close to the untiled one but not equal
    assert 0 < np.abs(res.image.astype(int) - untiled.image).mean() < 40


def test_depth_condition_from_a_user_supplied_estimator(tiny_model, tmp_path):
    from _tiny_sd import save_tiny_depth_model
    from rerender.keyframes import controls
    from rerender.keyframes.conditions import condition_images

    folder = tmp_path / "depth"
    model = save_tiny_depth_model(folder)
    img = frame(9, h=32, w=48)
    cfg = make_cfg(tiny_model, control=["depth"], depth_model=str(folder))
    cond = condition_images(cfg, img, 0, "cpu")[0]
    assert cond.shape == (32, 48, 3) and cond.dtype == np.uint8 and cond.min() == 0 and cond.max() == 255
    # by hand: the model's prediction at the processor's size, resized to the frame, min-max normalised
    est = controls.depth_estimator(str(folder), False, "cpu")
    with torch.no_grad():
        pred = model(**est.processor(images=img, return_tensors="pt")).predicted_depth
    pred = torch.nn.functional.interpolate(pred[:, None], size=(32, 48), mode="bicubic", align_corners=False)[0, 0]
    expected = ((pred - pred.min()) / (pred.max() - pred.min()) * 255).round().numpy()
    assert np.abs(cond[..., 0].astype(int) - expected).max() <= 1
    with pytest.raises(rconfig.ConfigError, match="depth_model"):
        rconfig.load(KeyframeConfig, None, {"control": ["depth"], "controlnet": ["x"]})
    pickled = tmp_path / "depth_bin"
    save_tiny_depth_model(pickled, safe=False)
    with pytest.raises(ValueError, match="allow-pickle"):
        controls.DepthEstimator(str(pickled))
    assert controls.DepthEstimator(str(pickled), allow_pickle=True)(img).shape == (32, 48, 3)


def test_cli_flags_reach_the_config():
    from rerender.cli import build_parser
    from rerender.cli.diffusion import KEYFRAME_FLAGS

    args = build_parser().parse_args(["run", "clip.mp4", "-o", "out.mp4", "--prompt", "a cat", "--prompt-at", "30:a dog", "--negative-prompt-at", "30:cats",
                         "--control-window", "0", "0.6", "--cross-window", "0.1", "0.9", "--freeu", "1.5", "1.6", "0.9",
                         "0.2", "--offload", "model", "--vae-tiling", "--raft-weights", "r.safetensors", "--raft-iters",
                         "8", "--control", "depth", "--depth-model", "dm", "--controlnet", "cn", "--init", "inversion",
                         "--source-prompt", "a street", "--inversion-refine", "3", "--reference", "ref.png",
                         "--reference-scale", "0.7", "--ip-adapter", "ip.safetensors", "--image-encoder", "enc",
                         "--reanchor-every", "6"])
    cfg = rconfig.from_dict(KeyframeConfig, {k: getattr(args, k) for k in KEYFRAME_FLAGS if getattr(args, k) is not None})
    assert cfg.prompt_schedule == ["30:a dog"] and cfg.negative_prompt_schedule == ["30:cats"]
    assert cfg.control_window == (0.0, 0.6) and cfg.cross_window == (0.1, 0.9)
    assert cfg.freeu == [1.5, 1.6, 0.9, 0.2] and cfg.offload == "model" and cfg.vae_tiling
    assert cfg.raft_weights == "r.safetensors" and cfg.raft_iters == 8
    assert cfg.control == ["depth"] and cfg.depth_model == "dm"
    assert cfg.init == "inversion" and cfg.source_prompt == "a street" and cfg.inversion_refine == 3
    assert cfg.reference == "ref.png" and cfg.reference_scale == 0.7 and cfg.ip_adapter == "ip.safetensors"
    assert cfg.image_encoder == "enc" and cfg.reanchor_every == 6
    plain = build_parser().parse_args(["run", "clip.mp4", "-o", "out.mp4"])
    defaults = rconfig.from_dict(KeyframeConfig, {k: getattr(plain, k) for k in KEYFRAME_FLAGS if getattr(plain, k) is not None})
    assert defaults.offload == "none" and not defaults.vae_tiling and defaults.freeu == [] and defaults.raft_weights is None
    assert defaults.init == "sdedit" and defaults.reference is None and defaults.reanchor_every == 0
