"""Ideas from the related methods in the key-frame stage: DDIM-inversion start (Tune-A-Video), a reference
image beside the prompt through an IP-Adapter (MagDiff's subject alignment), latent reuse and re-anchoring
across a long shot (VidRD). Tiny random models, CPU."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from _tiny_sd import H, W, conds, frame, make_cfg, no_occlusion, save_tiny_ip_adapter, zero_flow  # noqa: E402
from rerender import config as rconfig  # noqa: E402
from rerender.keyframes import attention, encoder, models  # noqa: E402
from rerender.keyframes.config import KeyframeConfig  # noqa: E402
from rerender.keyframes.sampler import Geometry, KeyframeSampler  # noqa: E402


# --- DDIM inversion -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smooth_comps(tiny_model):
    """The tiny model with its UNet output scaled by 0.05. A randomly initialised UNet is no denoiser: its
    'noise' field is so rough that the DDIM map is not contractive and no inversion converges; scaled down
    it is as smooth as a trained model's, which is what an exact-inversion check needs."""
    model, cn = tiny_model
    c = models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu"))
    with torch.no_grad():
        c.unet.conv_out.weight.mul_(0.05)
        c.unet.conv_out.bias.mul_(0.05)
    return c


def test_inversion_then_sampling_back_reproduces_the_input_latent(tiny_model, smooth_comps):
    img = frame(3)
    latent = encoder.encode(smooth_comps.vae, encoder.to_tensor(img))

    def roundtrip(refine: int, **kw) -> float:
        cfg = make_cfg(tiny_model, steps=8, strength=0.75, guidance_scale=1.0, prompt="a cat", added_prompt="",
                       source_prompt="a cat", init="inversion", inversion_refine=refine, shape_fusion=False,
                       pixel_fusion=False, adain=False, **kw)
        s = KeyframeSampler(smooth_comps, cfg)
        x_T = s.invert(img, conds(img))
        return (s.render(img, conds(img), init_latent=x_T, keep_memory=False).latent - latent).abs().max().item()

    exact = roundtrip(4)
    assert exact < 1e-3 * max(1.0, latent.abs().max().item())
    assert roundtrip(0) > 10 * exact  # plain DDIM inversion (noise taken at the cleaner latent) is only approximate
    assert roundtrip(4, control_window=(0.0, 0.5)) < 1e-3  # the ControlNet window is mirrored too


def test_inversion_cache_is_reused_on_a_rerun(tiny_model, comps, tmp_path, monkeypatch):
    from rerender.keyframes.stage import render_keys

    calls = []
    real = KeyframeSampler.invert
    monkeypatch.setattr(KeyframeSampler, "invert", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    frames = {0: frame(1), 3: frame(2)}
    keys = tmp_path / "keys"
    cfg = make_cfg(tiny_model, steps=4, init="inversion", source_prompt="a photo")
    res = render_keys(frames.__getitem__, [0, 3], keys, cfg, flow=zero_flow, occlusion=no_occlusion, components=comps)
    assert res.rendered == [0, 3] and len(calls) == 2
    assert sorted(p.name for p in (keys / "inversion").iterdir()) == ["0000.safetensors", "0003.safetensors"]
    first = (keys / "0003.png").read_bytes()
    # a new target prompt re-renders every key but reuses the inverted latents (no second inversion)
    res = render_keys(frames.__getitem__, [0, 3], keys, make_cfg(tiny_model, steps=4, init="inversion",
                      source_prompt="a photo", prompt="a dog"), flow=zero_flow, occlusion=no_occlusion, components=comps)
    assert res.rendered == [0, 3] and len(calls) == 2
    assert (keys / "0003.png").read_bytes() != first
    # a new source prompt changes the inversion: inverted again
    render_keys(frames.__getitem__, [0, 3], keys, make_cfg(tiny_model, steps=4, init="inversion",
                source_prompt="a painting"), flow=zero_flow, occlusion=no_occlusion, components=comps)
    assert len(calls) == 4
    sdedit = tmp_path / "sdedit"
    render_keys(frames.__getitem__, [0, 3], sdedit, make_cfg(tiny_model, steps=4), flow=zero_flow,
                occlusion=no_occlusion, components=comps)
    assert (sdedit / "0000.png").read_bytes() != (keys / "0000.png").read_bytes()
    with pytest.raises(rconfig.ConfigError, match="init"):
        rconfig.load(KeyframeConfig, None, {"init": "noise"})


# --- reference image through an IP-Adapter ----------------------------------------------------------------

@pytest.fixture(scope="module")
def ip_setup(tiny_model, comps, tmp_path_factory):
    from rerender.media import write_image

    folder = tmp_path_factory.mktemp("ip")
    adapter = save_tiny_ip_adapter(folder, comps.unet)
    rng = np.random.default_rng(3)
    ref_a, ref_b = folder / "painting.png", folder / "sheet.png"
    write_image(ref_a, rng.integers(0, 255, (48, 40, 3), dtype=np.uint8))
    write_image(ref_b, np.full((48, 40, 3), 200, np.uint8))
    model, cn = tiny_model
    ip = models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu", ip_adapter=str(adapter)))
    return ip, adapter, ref_a, ref_b


def test_reference_image_conditions_every_key_beside_cross_frame_attention(tiny_model, comps, ip_setup):
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    ip, adapter, ref_a, ref_b = ip_setup
    img, other = frame(4), frame(5)
    geo = Geometry.identity(H, W)

    def key(c, **kw):
        s = KeyframeSampler(c, make_cfg(tiny_model, steps=4, pixel_fusion=False, **kw))
        a = s.render(other, conds(other))
        calls = s.state.calls
        r = s.render(img, conds(img), a.memory, a.memory, geo)
        procs = c.unet.attn_processors
        # both kinds of processor are installed, ours on the decoder's self-attention, the adapter's on
        # every cross-attention layer, and ours actually attended to the references
        assert s.attn_layers and all(isinstance(procs[n], attention.CrossFrameAttnProcessor) for n in s.attn_layers)
        if c is ip:
            assert all(isinstance(p, IPAdapterAttnProcessor2_0) for n, p in procs.items() if n.endswith("attn2.processor"))
        assert s.state.calls > calls
        return r

    plain = key(comps)
    with_a = key(ip, reference=str(ref_a), reference_scale=1.0)
    with_b = key(ip, reference=str(ref_b), reference_scale=1.0)
    zero = key(ip, reference=str(ref_a), reference_scale=0.0)
    assert (with_a.latent - plain.latent).abs().max() > 1e-2       # the reference changes the result
    assert (with_a.latent - with_b.latent).abs().max() > 1e-2      # ... and which reference matters
    assert torch.allclose(zero.latent, plain.latent, atol=1e-5)    # scale 0 is the prompt alone
    with pytest.raises(ValueError, match="reference"):
        KeyframeSampler(ip, make_cfg(tiny_model, steps=4))          # adapter loaded, no image given


def test_ip_adapter_loading_rules(tiny_model, comps, ip_setup, tmp_path):
    import shutil

    from safetensors.torch import load_file

    ip, adapter, ref_a, _ = ip_setup
    model, cn = tiny_model
    # a folder holding the adapter file and image_encoder/ loads like the file
    folder = adapter.parent
    from_folder = models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu", ip_adapter=str(folder)))
    proj = "encoder_hid_proj.image_projection_layers.0.image_embeds.weight"
    assert torch.equal(from_folder.unet.state_dict()[proj], ip.unet.state_dict()[proj])
    assert torch.equal(ip.unet.state_dict()[proj], load_file(str(adapter))["image_proj.proj.weight"])
    # pickle adapters and encoders need --allow-pickle
    pkl = tmp_path / "ip.bin"
    pkl.write_bytes(b"x")
    with pytest.raises(ValueError, match="allow-pickle"):
        models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu", ip_adapter=str(pkl)))
    enc_bin = tmp_path / "enc_bin"
    shutil.copytree(folder / "image_encoder", enc_bin)
    w = load_file(str(enc_bin / "model.safetensors"))
    (enc_bin / "model.safetensors").unlink()
    torch.save(w, enc_bin / "pytorch_model.bin")
    with pytest.raises(ValueError, match="allow-pickle"):
        models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu", ip_adapter=str(adapter), image_encoder=str(enc_bin)))
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(adapter, lonely / adapter.name)
    with pytest.raises(FileNotFoundError, match="image-encoder"):
        models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu", ip_adapter=str(lonely / adapter.name)))


# --- a long shot: one anchor and one noise for every segment; re-anchoring -------------------------------

class _Spy:
    """Records, for every key the stage renders, which memories it passed and which noise it used."""

    def __init__(self, monkeypatch):
        self.calls, self.owner = [], {}
        real_render = KeyframeSampler.render

        def render(sampler, frame, conditions, anchor=None, prev=None, geometry=None, **kw):
            res = real_render(sampler, frame, conditions, anchor, prev, geometry, **kw)
            shape = tuple(res.latent.shape)
            self.calls.append(dict(anchor=anchor, prev=prev, origin=kw.get("origin"), noise=sampler.noise(shape),
                                   memory=res.memory))
            return res

        monkeypatch.setattr(KeyframeSampler, "render", render)

    def key_of(self, memory, keys) -> int | None:
        """The key whose render returned ``memory`` (by identity)."""
        for k, call in zip(keys, self.calls):
            if call["memory"] is memory:
                return k
        return None


def _shot(n: int) -> dict:
    return {i: frame(20 + i) for i in range(n)}


class _StopAfter:
    def __init__(self, n):
        self.n = n

    def stage(self, name, total):
        limit = self.n

        class S:
            done = 0

            def update(self, k=1):
                self.done += k
                if self.done == limit:
                    raise KeyboardInterrupt

            def close(self):
                pass
        return S()


def test_long_shot_shares_the_anchor_states_and_noise(tiny_model, comps, tmp_path, monkeypatch):
    from rerender.keyframes.stage import render_keys

    frames = _shot(7)
    keys = list(range(7))
    spy = _Spy(monkeypatch)
    cfg = make_cfg(tiny_model, steps=4)
    render_keys(frames.__getitem__, keys, tmp_path / "full", cfg, flow=zero_flow, occlusion=no_occlusion, components=comps)
    anchor = spy.calls[0]["memory"]
    assert all(c["anchor"] is anchor and c["origin"] is anchor for c in spy.calls[1:])  # the same object throughout
    assert all(c["noise"] is spy.calls[0]["noise"] for c in spy.calls)                  # one noise tensor
    assert [spy.key_of(c["prev"], keys) for c in spy.calls[1:]] == keys[:-1]

    # a stopped and resumed run reads the same anchor states and noise back, byte for byte
    full_calls, spy.calls = spy.calls, []
    with pytest.raises(KeyboardInterrupt):
        render_keys(frames.__getitem__, keys, tmp_path / "part", cfg, flow=zero_flow, occlusion=no_occlusion,
                    components=comps, progress=_StopAfter(4))
    spy.calls = []
    res = render_keys(frames.__getitem__, keys, tmp_path / "part", cfg, flow=zero_flow, occlusion=no_occlusion,
                      components=comps)
    assert res.skipped == [0, 1, 2, 3] and res.rendered == [4, 5, 6]
    loaded = spy.calls[0]["anchor"]
    assert loaded is not anchor and set(loaded.attn) == set(anchor.attn)
    assert all(torch.equal(loaded.attn[k], anchor.attn[k]) for k in anchor.attn)
    assert all(c["anchor"] is loaded for c in spy.calls)
    assert torch.equal(spy.calls[0]["noise"], full_calls[0]["noise"])
    for k in keys:
        assert (tmp_path / "part" / f"{k:04d}.png").read_bytes() == (tmp_path / "full" / f"{k:04d}.png").read_bytes()


def test_reanchoring_switches_the_states_exactly_where_it_should(tiny_model, comps, tmp_path, monkeypatch):
    from rerender.keyframes.stage import render_keys

    frames = _shot(6)
    keys = list(range(6))
    spy = _Spy(monkeypatch)
    refs_per_pass = []
    real_loop = KeyframeSampler._loop
    monkeypatch.setattr(KeyframeSampler, "_loop",
                        lambda self, x, ts, conds, plan, *a: refs_per_pass.append(len(plan.refs))
                        or real_loop(self, x, ts, conds, plan, *a))
    cfg = make_cfg(tiny_model, steps=4, reanchor_every=2)
    assert [cfg.segment_anchor(n) for n in range(1, 6)] == [0, 0, 2, 2, 4]
    render_keys(frames.__getitem__, keys, tmp_path / "re", cfg, flow=zero_flow, occlusion=no_occlusion, components=comps)
    used = [(spy.key_of(c["anchor"], keys), spy.key_of(c["origin"], keys), spy.key_of(c["prev"], keys))
            for c in spy.calls[1:]]
    assert used == [(0, 0, 0), (0, 0, 1), (2, 0, 2), (2, 0, 3), (4, 0, 4)]
    # attention reads [origin; segment anchor; previous] once the anchor moved: 3 references per pass
    # (the anchor: one pass without references; later keys: rough + fused pass)
    assert refs_per_pass == [0] + [2, 2, 2, 2] + [3, 3, 3, 3, 3, 3]
    render_keys(frames.__getitem__, keys, tmp_path / "plain", make_cfg(tiny_model, steps=4), flow=zero_flow,
                occlusion=no_occlusion, components=comps)
    same = [(tmp_path / "re" / f"{k:04d}.png").read_bytes() == (tmp_path / "plain" / f"{k:04d}.png").read_bytes()
            for k in keys]
    assert same == [True, True, True, False, False, False]  # identical until the first re-anchored key
    # resuming mid-segment restores the origin, the segment anchor and the previous key
    with pytest.raises(KeyboardInterrupt):
        render_keys(frames.__getitem__, keys, tmp_path / "part", cfg, flow=zero_flow, occlusion=no_occlusion,
                    components=comps, progress=_StopAfter(4))
    assert sorted(p.name for p in (tmp_path / "part" / ".state").glob("*.safetensors")) == \
        ["0000.safetensors", "0002.safetensors", "0003.safetensors"]
    render_keys(frames.__getitem__, keys, tmp_path / "part", cfg, flow=zero_flow, occlusion=no_occlusion, components=comps)
    for k in keys:
        assert (tmp_path / "part" / f"{k:04d}.png").read_bytes() == (tmp_path / "re" / f"{k:04d}.png").read_bytes()
    with pytest.raises(rconfig.ConfigError, match="reanchor_every"):
        rconfig.load(KeyframeConfig, None, {"reanchor_every": -1})
