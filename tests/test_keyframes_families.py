"""Model families (SD 1.5, SD 2.x v-prediction, SDXL) and schedulers of the key-frame stage.

With the constraints off, a key frame equals diffusers' ControlNet img2img pipeline of the family for
each scheduler (tiny random models built as diffusers' own tests build them); with them on, the
constraints' invariants hold on every family; the family is read from folders and single files."""
from __future__ import annotations

import json

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
        out[fam] = models.load_components(str(model), [str(cn)], device="cpu")
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
        models.load_components(str(path), [], device="cpu")
    assert "sdxl (Stable Diffusion XL)" in str(e.value)


def test_transformer_folder_and_mismatched_controlnet_are_refused(tmp_path, family_models):
    flux = tmp_path / "flux"
    (flux / "transformer").mkdir(parents=True)
    (flux / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(ValueError, match="Flux .*supported families"):
        models.load_components(str(flux), [], device="cpu")
    sdxl_model, _ = family_models["sdxl"]
    _, sd15_cn = family_models["sd15"]
    with pytest.raises(ValueError, match=r"controlnet\[0\]: .* ControlNet for Stable Diffusion 1.x.*Stable Diffusion XL"):
        models.load_components(str(sdxl_model), [str(sd15_cn)], device="cpu")
    with pytest.raises(ValueError, match="not Stable Diffusion 2"):
        models.load_components(str(sdxl_model), [], device="cpu", family="sd2")


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
    c = models.load_components(str(model), [str(cn)], device="cpu", dtype="fp16")
    assert c.unet.dtype == torch.float16 and c.vae.dtype == torch.float32  # force_upcast: the VAE stays fp32
    img = frame(3)
    latent = encoder.encode(c.vae, encoder.to_tensor(img, dtype=torch.float16))
    assert latent.dtype == torch.float16
    assert encoder.decode(c.vae, latent).dtype == torch.float16
