"""Model families (SD 1.5, SD 2.x v-prediction, SDXL) and schedulers of the key-frame stage.

With the constraints off, a key frame equals diffusers' ControlNet img2img pipeline of the family for
each scheduler (tiny random models built as diffusers' own tests build them); with them on, the
constraints' invariants hold on every family; the family is read from folders and single files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from _tiny_sd import H, W, conds, frame, make_cfg  # noqa: E402
from rerender.keyframes import encoder, families, models, schedulers  # noqa: E402
from rerender.keyframes.sampler import Geometry, KeyframeSampler  # noqa: E402

OFF = dict(cross_frame_attention=False, shape_fusion=False, pixel_fusion=False, adain=False)


@pytest.fixture(scope="module")
def family_models(tmp_path_factory, tiny_model):
    from _tiny_models import save_family_folder

    out = {"sd15": tiny_model}
    for fam in ("sd2", "sdxl"):
        out[fam] = save_family_folder(tmp_path_factory.mktemp(f"tiny_{fam}"), fam)
    return out


@pytest.fixture(scope="module")
def family_comps(family_models, comps):
    out = {"sd15": comps}
    for fam in ("sd2", "sdxl"):
        model, cn = family_models[fam]
        out[fam] = models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu"))
    return out


def _reference_pipeline(c, sampler_name):
    import diffusers

    sch = schedulers.make(sampler_name, c.scheduler.config)
    cls = getattr(diffusers, families.get(c.family).reference_pipeline)
    parts = dict(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet,
                 controlnet=c.controlnets[0], scheduler=sch)
    if c.family == "sdxl":
        parts.update(text_encoder_2=c.text_encoder_2, tokenizer_2=c.tokenizer_2, add_watermarker=False)
    else:
        parts.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe = cls(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --- detection ----------------------------------------------------------------------------------

def test_family_is_read_from_folders(family_models, family_comps):
    for fam, (model, _) in family_models.items():
        assert families.detect(str(model), "folder") == fam
        assert family_comps[fam].family == fam
    assert family_comps["sd2"].scheduler.config.prediction_type == "v_prediction"
    assert family_comps["sdxl"].text_encoder_2 is not None


def _write_header(path, names):
    """A safetensors file holding one tiny tensor per name (the header is all detection reads)."""
    from safetensors.numpy import save_file

    save_file({n: np.zeros(1, np.float32) for n in names}, str(path))


@pytest.mark.parametrize("names, expected", [
    (["model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.transformer.text_model.x"], "sd15"),
    (["model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.model.transformer.x"], "sd2"),
    (["model.diffusion_model.input_blocks.0.0.weight", "conditioner.embedders.0.transformer.x",
      "conditioner.embedders.1.model.transformer.x"], "sdxl"),
])
def test_family_is_read_from_single_file_tensor_names(tmp_path, names, expected):
    path = tmp_path / "model.safetensors"
    _write_header(path, names)
    assert families.detect(str(path), "file") == expected


@pytest.mark.parametrize("names, what", [
    (["model.diffusion_model.joint_blocks.0.context_block.adaLN_modulation.1.bias"], "Stable Diffusion 3"),
    (["double_blocks.0.img_attn.norm.key_norm.scale"], "Flux"),
    (["conditioner.embedders.0.model.transformer.x", "model.diffusion_model.input_blocks.0.0.weight"], "refiner"),
    (["first_stage_model.encoder.conv_in.weight"], "no Stable Diffusion UNet"),
])
def test_unsupported_single_files_are_refused_with_what_is_supported(tmp_path, names, what):
    path = tmp_path / "model.safetensors"
    _write_header(path, names)
    with pytest.raises(ValueError, match=what) as e:
        models.load_components(models.ModelSpec(str(path), [], device="cpu"))
    assert "sdxl (Stable Diffusion XL)" in str(e.value)


def test_transformer_folder_and_mismatched_controlnet_are_refused(tmp_path, family_models):
    flux = tmp_path / "flux"
    (flux / "transformer").mkdir(parents=True)
    (flux / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(ValueError, match="Flux .*supported families"):
        models.load_components(models.ModelSpec(str(flux), [], device="cpu"))
    sdxl_model, _ = family_models["sdxl"]
    _, sd15_cn = family_models["sd15"]
    with pytest.raises(ValueError, match=r"controlnet\[0\]: .* ControlNet for Stable Diffusion 1.x.*Stable Diffusion XL"):
        models.load_components(models.ModelSpec(str(sdxl_model), [str(sd15_cn)], device="cpu"))
    with pytest.raises(ValueError, match="not Stable Diffusion 2"):
        models.load_components(models.ModelSpec(str(sdxl_model), [], device="cpu", family="sd2"))


def test_family_defaults_and_default_controlnets(family_models):
    from rerender.keyframes.config import KeyframeConfig

    xl, _ = family_models["sdxl"]
    cfg = KeyframeConfig(model=str(xl), control=["canny"])
    assert cfg.resolved_family() == "sdxl"
    assert cfg.controlnets() == [families.FAMILIES["sdxl"].default_controlnets["canny"]]
    with pytest.raises(ValueError, match="'hed' needs an explicit controlnet .*sdxl"):
        KeyframeConfig(model=str(xl), control=["hed"])
    assert KeyframeConfig().controlnets() == ["lllyasviel/sd-controlnet-hed"]  # SD 1.5 unchanged
    assert families.FAMILIES["sdxl"].freeu == (1.3, 1.4, 0.9, 0.2) and families.FAMILIES["sdxl"].resolution == 1024
    # the new options at their defaults leave earlier runs' fingerprints as they were
    data = KeyframeConfig().fingerprint()
    assert KeyframeConfig(sampler="ddim", family="auto").fingerprint() == data
    assert KeyframeConfig(sampler="euler").fingerprint() != data


def _clip_keys(sd: dict) -> dict:
    """CLIP text-model keys without transformers' optional ``text_model.`` level."""
    return {(k[len("text_model."):] if k.startswith("text_model.") else k): v for k, v in sd.items()}


def _open_clip(sd: dict, prefix: str) -> dict:
    """transformers CLIP text-model keys -> the OpenCLIP layout of original SD 2 / SDXL checkpoints
    (fused q/k/v ``in_proj``, ``resblocks``, a transposed ``text_projection``)."""
    renames = (("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."), ("mlp.fc1.", "mlp.c_fc."),
               ("mlp.fc2.", "mlp.c_proj."), ("self_attn.out_proj.", "attn.out_proj."))
    out, qkv = {}, {}
    for k, v in _clip_keys(sd).items():
        if k == "text_projection.weight":
            out[prefix + "text_projection"] = v.T.contiguous()
        elif k == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = v
        elif k == "embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = v
        elif k.startswith("final_layer_norm."):
            out[prefix + "ln_final." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("encoder.layers."):
            n, rest = k[len("encoder.layers."):].split(".", 1)
            base = f"{prefix}transformer.resblocks.{n}."
            new = next((base + b + rest[len(a):] for a, b in renames if rest.startswith(a)), None)
            if new is not None:
                out[new] = v
            else:  # self_attn.{q,k,v}_proj.{weight,bias}
                proj, kind = rest[len("self_attn."):].split(".")
                qkv.setdefault((base, kind), {})[proj[0]] = v
    for (base, kind), d in qkv.items():
        out[f"{base}attn.in_proj_{kind}"] = torch.cat([d["q"], d["k"], d["v"]])
    return out


def _single_file(pipe, family: str) -> dict:
    """The pipeline's weights in the original single-file layout of its family (SGM for SDXL)."""
    from test_keyframes_loading import unet_to_ldm, vae_to_ldm

    unet = dict(pipe.unet.state_dict())
    extra = {}
    for i, j in (("1", "0"), ("2", "2")):  # SDXL's text/time embedding MLP is label_emb.0.{0,2}
        for kind in ("weight", "bias"):
            key = f"add_embedding.linear_{i}.{kind}"
            if key in unet:
                extra[f"model.diffusion_model.label_emb.0.{j}.{kind}"] = unet.pop(key)
    sd = dict(unet_to_ldm(unet, dict(pipe.unet.config)), **extra)
    sd.update(vae_to_ldm(pipe.vae.state_dict(), dict(pipe.vae.config)))
    if family == "sdxl":
        sd.update({"conditioner.embedders.0.transformer.text_model." + k: v
                   for k, v in _clip_keys(pipe.text_encoder.state_dict()).items()})
        sd.update(_open_clip(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model."))
    else:
        sd.update(_open_clip(pipe.text_encoder.state_dict(), "cond_stage_model.model."))
    return {k: v.contiguous() for k, v in sd.items()}


@pytest.mark.parametrize("family", ["sd2", "sdxl"])
def test_single_file_models_load_like_their_folders(family_models, family_comps, tmp_path, family):
    from safetensors.torch import save_file

    model, cn = family_models[family]
    ref = family_comps[family]
    pipe = type("P", (), dict(unet=ref.unet, vae=ref.vae, text_encoder=ref.text_encoder,
                              text_encoder_2=ref.text_encoder_2))
    path = tmp_path / f"{family}.safetensors"
    save_file(_single_file(pipe, family), str(path))
    assert families.detect(str(path), "file") == family
    comps = models.load_components(models.ModelSpec(str(path), [str(cn)], model_config=str(model), device="cpu"))
    assert comps.family == family
    names = ("unet", "vae", "text_encoder") + (("text_encoder_2",) if family == "sdxl" else ())
    for name in names:
        got = getattr(comps, name).state_dict()
        for k, v in getattr(ref, name).state_dict().items():
            assert torch.equal(got[k], v), f"{name}.{k}"


# --- trajectory fractions ---------------------------------------------------------------------------

@pytest.mark.parametrize("n", [4, 8, 14, 20])
def test_ddim_positions_are_step_fractions_and_windows_match_the_paper(comps, n):
    from rerender.keyframes import constraints

    traj = schedulers.Trajectory("ddim", comps.scheduler.config, 20, n / 20)
    assert traj.positions == pytest.approx([k / n for k in range(n)], abs=1e-12)
    for window in ((0.0, 0.1), (0.5, 0.8), (0.8, 1.0), (0.0, 1.0), (0.25, 0.5)):
        paper = constraints.window_steps(n, window)
        if len(paper):  # where the step-fraction rule finds steps, the trajectory rule finds the same
            assert schedulers.window_steps(traj.positions, window) == paper


def test_few_step_schedules_give_every_window_a_step(comps):
    from rerender.keyframes import constraints

    assert list(constraints.window_steps(4, (0.8, 1.0))) == [3]  # 4 DDIM steps: AdaIN on the last one
    traj = schedulers.Trajectory("lcm", comps.scheduler.config, 4, 1.0)
    assert len(traj.timesteps) == 4
    for window in ((0.0, 0.1), (0.5, 0.8), (0.8, 1.0)):
        steps = schedulers.window_steps(traj.positions, window)
        assert len(steps) >= 1
        k = steps[0]  # the chosen step's span of the trajectory meets the window
        end = traj.positions[k + 1] if k + 1 < 4 else 1.0
        assert traj.positions[k] < window[1] and end > window[0]
    assert list(schedulers.window_steps(traj.positions, (0.3, 0.3))) == []


# --- equivalence with diffusers' ControlNet img2img pipeline of each family ----------------------------

CASES = [("sd15", "ddim"), ("sd2", "ddim"), ("sdxl", "ddim"), ("sdxl", "euler"), ("sdxl", "euler-a"),
         ("sdxl", "dpm++"), ("sdxl", "lcm"), ("sdxl", "tcd"), ("sd2", "euler"), ("sd15", "dpm++")]


@pytest.mark.parametrize("family, sampler_name", CASES)
def test_constraints_off_equal_diffusers_pipeline_of_the_family(family_models, family_comps, family, sampler_name):
    from PIL import Image

    c = family_comps[family]
    steps, strength = 6, 0.75
    cfg = make_cfg(family_models[family], steps=steps, strength=strength, sampler=sampler_name, **OFF)
    s = KeyframeSampler(c, cfg)
    img = frame(1)
    ours = s.render(img, conds(img))
    pipe = _reference_pipeline(c, sampler_name)
    positive, negative = cfg.prompts_for(0)
    latent = encoder.encode(c.vae, encoder.to_tensor(img))
    # the pipeline's eta is DDIM's eta and TCD's gamma: ours are 0 (the paper) and TCD's default 0.3
    kwargs = dict(eta={"ddim": 0.0, "tcd": 0.3}[sampler_name]) if sampler_name in ("ddim", "tcd") else {}
    out = pipe(prompt=positive, negative_prompt=negative, image=latent, control_image=Image.fromarray(conds(img)[0]),
               strength=strength, num_inference_steps=steps, guidance_scale=cfg.guidance_scale,
               controlnet_conditioning_scale=cfg.control_strength[0], height=H, width=W,
               generator=torch.Generator("cpu").manual_seed(cfg.seed), output_type="latent", **kwargs).images
    assert torch.allclose(out, ours.latent, atol=1e-4, rtol=0), (out - ours.latent).abs().max()
    # the comparison can fail: another seed differs
    other = KeyframeSampler(c, make_cfg(family_models[family], steps=steps, strength=strength, seed=3,
                                        sampler=sampler_name, **OFF)).render(img, conds(img))
    assert (other.latent - ours.latent).abs().max() > 1e-3


# --- the constraints' invariants on every family ------------------------------------------------------

@pytest.mark.parametrize("family, sampler_name", [("sd2", "ddim"), ("sdxl", "ddim"), ("sdxl", "euler"),
                                                  ("sdxl", "lcm")])
def test_identical_frames_with_every_constraint_reproduce_the_anchor(family_models, family_comps, family,
                                                                     sampler_name):
    """Cross-frame attention with the anchor as its own reference is self-attention; shape fusion with an
    identity flow and AdaIN to its own statistics leave the latent unchanged: the key equals the anchor.
    With pixel-aware fusion as well, the rough pass is the anchor and the pixel reference its image."""
    c = family_comps[family]
    windows = dict(steps=6, sampler=sampler_name, shape_window=(0.0, 0.3), pixel_window=(0.5, 0.8),
                   adain_window=(0.8, 1.0))
    s = KeyframeSampler(c, make_cfg(family_models[family], pixel_fusion=False, **windows))
    img = frame(2)
    geo = Geometry.identity(H, W)
    anchor = s.render(img, conds(img))
    calls = s.state.calls
    key = s.render(img, conds(img), anchor.memory, anchor.memory, geo)
    assert s.state.calls > calls  # cross-frame attention ran
    assert key.trace["shape"] and key.trace["adain"] and key.trace["cross"]
    assert torch.allclose(key.latent, anchor.latent, atol=2e-4, rtol=0), (key.latent - anchor.latent).abs().max()
    # and a different frame whose flow is unreliable everywhere (no fusion) is not the anchor
    occ = np.ones((H, W), np.uint8)
    unreliable = Geometry(geo.flow_anchor, occ, geo.flow_prev, occ)
    other = s.render(frame(5), conds(frame(5)), anchor.memory, anchor.memory, unreliable)
    assert (other.latent - anchor.latent).abs().max() > 1e-3

    s = KeyframeSampler(c, make_cfg(family_models[family], **windows))  # every constraint on
    anchor = s.render(img, conds(img))
    res = s.render(img, conds(img), anchor.memory, anchor.memory, geo)
    assert res.trace["pixel"] and res.trace["shape"] and res.trace["adain"]
    assert np.abs(res.rough.astype(int) - anchor.image).max() <= 1
    ref = s.pixel_reference(encoder.to_tensor(res.rough), anchor.image, anchor.image, geo)
    assert np.array_equal(encoder.to_image(ref), anchor.image)


def test_sdxl_fp16_vae_is_upcast(family_models):
    model, cn = family_models["sdxl"]
    c = models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu", dtype="fp16"))
    assert c.unet.dtype == torch.float16 and c.vae.dtype == torch.float32  # force_upcast: the VAE stays fp32
    img = frame(3)
    latent = encoder.encode(c.vae, encoder.to_tensor(img, dtype=torch.float16))
    assert latent.dtype == torch.float16
    assert encoder.decode(c.vae, latent).dtype == torch.float16


# --- end to end ------------------------------------------------------------------------------------

def test_cli_run_and_keyframes_with_a_tiny_sdxl_folder_and_controlnet(family_models, tmp_path, capsys):
    from rerender.cli import main
    from rerender.media import write_image

    rng = np.random.default_rng(0)
    base = (rng.random((H + 16, W + 16, 3)) * 255).astype(np.uint8)
    clip = tmp_path / "clip"
    for i in range(5):
        write_image(clip / f"{i:04d}.png", np.ascontiguousarray(base[i % 3:i % 3 + H, i:i + W]))
    model, cn = family_models["sdxl"]
    common = ["--prompt", "a cat", "--model", str(model), "--controlnet", str(cn), "--control", "canny",
              "--interval", "2", "--steps", "4"]
    out = tmp_path / "out"
    assert main(["--progress", "json", "run", str(clip), *common, "--sampler", "euler", "-o", str(out)]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "done"
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:04d}.png" for i in range(5)]
    keys = out.with_name("out.work") / "keys"
    assert sorted(p.name for p in keys.glob("*.png")) == ["0000.png", "0002.png", "0004.png"]
    # rerender keyframes with another sampler renders the keys again (a new fingerprint)
    work = tmp_path / "work"
    assert main(["--progress", "json", "keyframes", str(clip), *common, "--sampler", "lcm", "--guidance-scale", "1",
                 "--work-dir", str(work)]) == 0
    assert sorted(p.name for p in (work / "keys").glob("*.png")) == ["0000.png", "0002.png", "0004.png"]
    # a family that is not the model's is a user error naming both
    capsys.readouterr()
    assert main(["keyframes", str(clip), *common, "--family", "sd2", "--work-dir", str(work)]) == 2
    assert "not Stable Diffusion 2" in capsys.readouterr().err


def test_info_names_the_family(family_models, tmp_path, capsys):
    from rerender.cli import main

    model, _ = family_models["sdxl"]
    assert main(["info", "--model", str(model)]) == 0
    assert f"model {model}: Stable Diffusion XL (sdxl), native 1024 px, FreeU 1.3 1.4 0.9 0.2" in capsys.readouterr().out
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x01")
    assert main(["info", "--model", str(bad)]) == 0
    assert "NOT USABLE (model: " in capsys.readouterr().out


def test_blender_addon_reads_the_family_through_the_worker(family_models, tmp_path):
    """The add-on never imports rerender: its family button asks the worker (`rerender info --json --model`)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "rerender_addon_worker", Path(__file__).resolve().parents[1] / "blender_addon" / "worker.py")
    addon_worker = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = addon_worker  # dataclasses look the module up while building the class
    spec.loader.exec_module(addon_worker)
    model, _ = family_models["sdxl"]
    assert addon_worker.model_family(sys.executable, str(model)) == "Family: Stable Diffusion XL"
    assert addon_worker.model_family(sys.executable, str(family_models["sd2"][0])).startswith("Family: Stable Diffusion 2")
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x01")
    assert addon_worker.model_family(sys.executable, str(bad)).startswith("Family unknown: model: ")
    assert addon_worker.model_family(str(tmp_path / "no-python"), str(model)).startswith("Family unknown: cannot run")


def test_sdxl_ip_adapter_reference(family_models, family_comps, tmp_path):
    """An IP-Adapter on SDXL (diffusers' loader, the original file layout): scale 0 is the plain key
    frame exactly, scale 1 follows the reference image."""
    from _tiny_sd import save_tiny_ip_adapter
    from rerender.media import write_image

    model, cn = family_models["sdxl"]
    adapter = save_tiny_ip_adapter(tmp_path / "ip", family_comps["sdxl"].unet)
    comps = models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu", ip_adapter=str(adapter)))
    assert comps.family == "sdxl"
    write_image(tmp_path / "ref.png", frame(9))
    img = frame(1)
    latents = [KeyframeSampler(comps, make_cfg(family_models["sdxl"], steps=4, pixel_fusion=False,
                                               reference=str(tmp_path / "ref.png"), reference_scale=scale))
               .render(img, conds(img)).latent for scale in (0.0, 1.0)]
    plain = KeyframeSampler(family_comps["sdxl"], make_cfg(family_models["sdxl"], steps=4, pixel_fusion=False))
    assert torch.equal(latents[0], plain.render(img, conds(img)).latent)
    assert (latents[1] - latents[0]).abs().max() > 1e-2


@pytest.mark.parametrize("family, sampler_name", [("sdxl", "euler-a"), ("sd2", "dpm++")])
def test_stage_with_every_option_on_other_families(family_models, family_comps, tmp_path, family, sampler_name):
    """The stage over three keys with inversion start, colour correction, a matte, re-anchoring, a prompt
    schedule, FreeU and model offload: keys are written, the input stays outside the matte, offloading
    changes nothing, and a rerun reuses every key."""
    from _tiny_sd import zero_flow
    from rerender.keyframes.stage import render_keys

    model, cn = family_models[family]
    frames = {0: frame(1), 2: frame(2), 4: frame(4)}
    matte = np.zeros((H, W), np.uint8)
    matte[8:24, 8:24] = 255
    opts = dict(steps=4, sampler=sampler_name, init="inversion", source_prompt="a photo", color_correction=True,
                reanchor_every=1, prompt_schedule=["2:a dog"], freeu=list(families.get(family).freeu))
    out = {}
    for offload in ("none", "model"):
        comps = family_comps[family] if offload == "none" else models.load_components(
            models.ModelSpec(str(model), [str(cn)], device="cpu", offload="model"))
        keys = tmp_path / offload
        cfg = make_cfg(family_models[family], offload=offload, **opts)
        res = render_keys(frames.__getitem__, [0, 2, 4], keys, cfg, flow=zero_flow, components=comps,
                          matte=lambda i: matte)
        assert res.rendered == [0, 2, 4]
        out[offload] = {i: (keys / f"{i:04d}.png").read_bytes() for i in frames}
        from rerender.media import read_image

        for i, f in frames.items():
            key = read_image(keys / f"{i:04d}.png")
            assert np.array_equal(key[matte == 0], f[matte == 0])
            assert np.abs(key[matte > 0].astype(int) - f[matte > 0]).mean() > 2
        again = render_keys(frames.__getitem__, [0, 2, 4], keys, cfg, flow=zero_flow, components=comps,
                            matte=lambda i: matte)
        assert again.rendered == [] and again.skipped == [0, 2, 4]
    assert out["none"] == out["model"]


def test_sdxl_lora_with_a_few_step_sampler(family_models, family_comps, tmp_path):
    """A LoRA on the SDXL UNet (as LCM-LoRA is applied: diffusers' loader, with a scale) and the LCM
    sampler at 2 steps without guidance: scale 0 is the plain model exactly, scale 1 changes the key."""
    from _tiny_models import save_random_lora

    model, cn = family_models["sdxl"]
    lora = save_random_lora(model, tmp_path, "StableDiffusionXLPipeline")
    img = frame(5)
    opts = dict(steps=2, strength=1.0, sampler="lcm", guidance_scale=1.0)

    def key(comps):
        s = KeyframeSampler(comps, make_cfg(family_models["sdxl"], **opts))
        assert s.n_steps == 2 and not s.cfg_batch
        anchor = s.render(img, conds(img))
        return anchor, s.render(frame(6), conds(frame(6)), anchor.memory, anchor.memory, Geometry.identity(H, W))

    base = key(family_comps["sdxl"])
    for scale, same in ((0, True), (1.0, False)):
        comps = models.load_components(models.ModelSpec(str(model), [str(cn)], loras=[f"{lora}:{scale}"], device="cpu"))
        got = key(comps)
        assert got[1].trace["shape"] and got[1].trace["adain"]  # both windows act on a 2-step schedule
        assert np.array_equal(got[0].image, base[0].image) == same
