"""Single-file base models: a tiny model written in the original (LDM) checkpoint layout that model
sites distribute, loaded through diffusers' from_single_file like a user's fine-tuned SD 1.5 file."""
from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from rerender.keyframes import models  # noqa: E402


def _resnet(key: str) -> str:
    for a, b in (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                 ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")):
        key = key.replace(f".{a}.", f".{b}.")
    return key


def unet_to_ldm(sd: dict, config: dict) -> dict:
    """Diffusers UNet2DConditionModel keys -> LDM ``model.diffusion_model.*`` keys (SD 1.x layout)."""
    top = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
           "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    n = config["layers_per_block"]
    out = {}
    for key, v in sd.items():
        new = None
        for a, b in top.items():
            if key.startswith(a + "."):
                new = b + key[len(a):]
        m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key)
        if m:
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            block = 1 + i * (n + 1) + j
            new = f"input_blocks.{block}.0.{rest}" if kind == "resnets" else f"input_blocks.{block}.1.{rest}"
            new = _resnet(new) if kind == "resnets" else new
        m = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key)
        if m:
            new = f"input_blocks.{1 + int(m[1]) * (n + 1) + n}.0.op.{m[2]}"
        m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
        if m:
            idx = {("resnets", 0): 0, ("attentions", 0): 1, ("resnets", 1): 2}[(m[1], int(m[2]))]
            new = f"middle_block.{idx}.{m[3]}"
            new = _resnet(new) if m[1] == "resnets" else new
        m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key)
        if m:
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            block = i * (n + 1) + j
            new = _resnet(f"output_blocks.{block}.0.{rest}") if kind == "resnets" else f"output_blocks.{block}.1.{rest}"
        m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key)
        if m:
            i = int(m[1])
            has_attn = "CrossAttn" in config["up_block_types"][i]
            new = f"output_blocks.{i * (n + 1) + n}.{2 if has_attn else 1}.conv.{m[2]}"
        assert new is not None, key
        out["model.diffusion_model." + new] = v
    return out


def vae_to_ldm(sd: dict, config: dict) -> dict:
    """Diffusers AutoencoderKL keys -> LDM ``first_stage_model.*`` keys."""
    n_up = len(config["up_block_types"])
    out = {}
    for key, v in sd.items():
        new = key.replace("conv_norm_out", "norm_out")
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", new)
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets\.", lambda m: f"decoder.up.{n_up - 1 - int(m[1])}.block.", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"decoder.up.{n_up - 1 - int(m[1])}.upsample.", new)
        new = re.sub(r"mid_block\.resnets\.(\d+)\.", lambda m: f"mid.block_{int(m[1]) + 1}.", new)
        if "mid_block.attentions.0." in new:
            new = new.replace("mid_block.attentions.0.", "mid.attn_1.")
            for a, b in (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")):
                new = new.replace(f".{a}.", f".{b}.")
            if v.ndim == 2:
                v = v[:, :, None, None]  # LDM keeps these as 1x1 convolutions
        new = new.replace("conv_shortcut", "nin_shortcut")
        out["first_stage_model." + new] = v
    return out


@pytest.fixture(scope="module")
def ldm_file(tmp_path_factory):
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    from _tiny_models import save_model_folder

    folder = tmp_path_factory.mktemp("ldm")
    model_dir, cn_dir = save_model_folder(folder)
    pipe = StableDiffusionPipeline.from_pretrained(str(model_dir), safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)
    sd = unet_to_ldm(pipe.unet.state_dict(), dict(pipe.unet.config))
    sd.update(vae_to_ldm(pipe.vae.state_dict(), dict(pipe.vae.config)))
    # original checkpoints name the text model "cond_stage_model.transformer.text_model.*" (newer
    # transformers flatten CLIPTextModel and drop the "text_model." level)
    sd.update({"cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v
               for k, v in pipe.text_encoder.state_dict().items()})
    path = folder / "finetune.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path, model_dir, cn_dir, pipe


def test_single_file_base_model_loads_like_the_folder(ldm_file):
    path, model_dir, cn_dir, pipe = ldm_file
    comps = models.load_components(models.ModelSpec(str(path), [str(cn_dir)], model_config=str(model_dir), device="cpu"))
    for name, ref in (("unet", pipe.unet), ("vae", pipe.vae), ("text_encoder", pipe.text_encoder)):
        got = getattr(comps, name).state_dict()
        for k, v in ref.state_dict().items():
            assert torch.equal(got[k], v), f"{name}.{k}"


def test_single_file_pickle_variant_needs_opt_in(ldm_file, tmp_path):
    path, model_dir, cn_dir, _ = ldm_file
    ckpt = tmp_path / "finetune.ckpt"
    ckpt.write_bytes(path.read_bytes())  # the extension alone decides: never unpickle without consent
    with pytest.raises(ValueError, match="allow-pickle"):
        models.load_components(models.ModelSpec(str(ckpt), [str(cn_dir)], model_config=str(model_dir), device="cpu"))


def test_folder_with_only_pickle_weights_needs_opt_in(tmp_path):
    """Folders and hub ids load with use_safetensors=True: a folder holding only
    diffusion_pytorch_model.bin is refused (naming --allow-pickle) and loads once allowed."""
    from _tiny_models import build_components

    net = build_components("tiny")["controlnet"]
    folder = tmp_path / "cn_bin"
    net.save_pretrained(folder, safe_serialization=False)
    assert (folder / "diffusion_pytorch_model.bin").is_file()
    assert not list(folder.glob("*.safetensors"))
    with pytest.raises(ValueError, match="allow-pickle"):
        models.load_controlnet(str(folder))
    loaded = models.load_controlnet(str(folder), allow_pickle=True)
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    vae_dir = tmp_path / "vae_bin"
    build_components("tiny")["vae"].save_pretrained(vae_dir, safe_serialization=False)
    with pytest.raises(ValueError, match="allow-pickle"):
        models.load_vae(str(vae_dir))
