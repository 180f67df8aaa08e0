"""Model families of the key-frame stage: what each one is, how to recognise it, its defaults.

A family fixes the diffusers classes that hold its components, how prompts become conditioning
(one CLIP encoder, or SDXL's two with pooled embeddings and size/crop micro-conditioning) and the
cited defaults of ``FAMILIES``. The family is read from the model itself:
  * a diffusers folder: ``model_index.json``'s ``_class_name``, else its ``unet/config.json``;
  * a single file: the names of its tensors (the safetensors header only; no weights are read);
  * a hub id: its ``model_index.json`` and ``unet/config.json`` through the hub's cache; when they
    cannot be fetched, the loaded UNet tells (:func:`from_unet`).
Transformer families (SD3, Flux) are recognised and refused with a message naming what is supported.
Adding one takes its attention processor (cross-frame attention over joint text+image tokens), its
text conditioning and a row here; the sampler only sees a :class:`Family`.
"""
from __future__ import annotations

import dataclasses
import json
import struct
import typing
from pathlib import Path

from .conditions import DEFAULT_CONTROLNETS
from .config import Family as config_family


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    label: str
    pipeline: str
    """diffusers pipeline class whose components (and single-file loader) are used."""
    reference_pipeline: str
    """diffusers' ControlNet img2img pipeline of the family: with the constraints off, ours equals it."""
    text: str
    """Text conditioning: "clip" (last hidden state of one encoder) or "sdxl" (penultimate hidden states
    of two encoders concatenated, the second's pooled projection, and the size/crop time ids)."""
    resolution: int
    """Native training resolution (pixels, square)."""
    freeu: tuple[float, float, float, float]
    """FreeU factors (b1, b2, s1, s2) published for the family (FreeU's README, as in diffusers' docs)."""
    default_controlnets: dict
    """Default ControlNet (hub id) per built-in condition; a condition missing here needs --controlnet."""
    ip_adapter_file: tuple[str, str]
    """(subfolder, file) of the family's IP-Adapter in a hub repository laid out like h94/IP-Adapter."""
    ip_adapter_encoder: str
    """Subfolder of that repository holding the adapter's CLIP image encoder."""
    source: str
    """Where the defaults come from."""


# Steps (20) and strength (0.75) are the paper's for every family (the constraints' windows are
# fractions of the trajectory, so they carry over); what differs per family is below.
FAMILIES: dict[str, Family] = {
    "sd15": Family(
        name="sd15", label="Stable Diffusion 1.x", pipeline="StableDiffusionPipeline",
        reference_pipeline="StableDiffusionControlNetImg2ImgPipeline", text="clip", resolution=512,
        freeu=(1.5, 1.6, 0.9, 0.2),
        default_controlnets=DEFAULT_CONTROLNETS,  # the condition registry's (the paper's ControlNets)
        ip_adapter_file=("models", "ip-adapter_sd15.safetensors"), ip_adapter_encoder="models/image_encoder",
        source="SD 1.5 model card (512 px); FreeU README (SD1.4/1.5 factors); Rerender paper (ControlNets)"),
    "sd2": Family(
        name="sd2", label="Stable Diffusion 2.x", pipeline="StableDiffusionPipeline",
        reference_pipeline="StableDiffusionControlNetImg2ImgPipeline", text="clip", resolution=768,
        freeu=(1.4, 1.6, 0.9, 0.2),
        default_controlnets={"canny": "thibaud/controlnet-sd21-canny-diffusers",
                             "hed": "thibaud/controlnet-sd21-hed-diffusers",
                             "depth": "thibaud/controlnet-sd21-depth-diffusers"},
        ip_adapter_file=("", ""), ip_adapter_encoder="",
        source="SD 2.1 model card (768 px v-prediction; the -base models are 512 px epsilon); FreeU README "
               "(SD2.1 factors)"),
    "sdxl": Family(
        name="sdxl", label="Stable Diffusion XL", pipeline="StableDiffusionXLPipeline",
        reference_pipeline="StableDiffusionXLControlNetImg2ImgPipeline", text="sdxl", resolution=1024,
        freeu=(1.3, 1.4, 0.9, 0.2),
        default_controlnets={"canny": "diffusers/controlnet-canny-sdxl-1.0",
                             "depth": "diffusers/controlnet-depth-sdxl-1.0"},
        ip_adapter_file=("sdxl_models", "ip-adapter_sdxl.safetensors"),
        ip_adapter_encoder="sdxl_models/image_encoder",
        source="SDXL paper / model card (1024 px, two text encoders, size and crop conditioning); FreeU README "
               "(SDXL factors); diffusers' SDXL ControlNets"),
}
# the config's Family literal (and so the CLI's --family choices) is "auto" + exactly these
assert ("auto", *FAMILIES) == typing.get_args(config_family), "keyframes.config.Family and FAMILIES disagree"
SUPPORTED = ", ".join(f"{f.name} ({f.label})" for f in FAMILIES.values())

# diffusers pipeline class names -> family (folders); transformer families are recognised to refuse them
_PIPELINE_FAMILY = {"StableDiffusionPipeline": "sd15", "StableDiffusionImg2ImgPipeline": "sd15",
                    "StableDiffusionControlNetPipeline": "sd15", "StableDiffusionXLPipeline": "sdxl",
                    "StableDiffusionXLImg2ImgPipeline": "sdxl", "StableDiffusionXLControlNetPipeline": "sdxl"}
_UNSUPPORTED = {"StableDiffusion3Pipeline": "Stable Diffusion 3 (MM-DiT transformer)",
                "FluxPipeline": "Flux (transformer)", "PixArtAlphaPipeline": "PixArt (transformer)",
                "PixArtSigmaPipeline": "PixArt (transformer)", "KandinskyV22Pipeline": "Kandinsky 2.2",
                "StableCascadePriorPipeline": "Stable Cascade", "IFPipeline": "DeepFloyd IF"}


class UnsupportedModel(ValueError):
    """The model is of a family the key-frame stage does not handle."""


def get(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"family: {name!r} is not one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def _refuse(source: str, what: str) -> UnsupportedModel:
    return UnsupportedModel(f"model: {source} is {what}, which the key-frame stage does not support; "
                            f"supported families: {SUPPORTED}")


def from_unet_config(config: dict, source: str = "model") -> str:
    """Family of a UNet2DConditionModel config: SDXL conditions on text and time ids, SD 2 attends to
    1024-wide OpenCLIP states, SD 1 to 768-wide CLIP states (tiny test models: the SD 1 layout)."""
    if config.get("addition_embed_type") == "text_time":
        if config.get("cross_attention_dim") == 1280 and config.get("projection_class_embeddings_input_dim") == 2560:
            raise _refuse(source, "an SDXL refiner (it conditions on one text encoder and an aesthetic score)")
        return "sdxl"
    if config.get("addition_embed_type") is not None:
        raise _refuse(source, f"a UNet with addition_embed_type={config['addition_embed_type']!r}")
    if config.get("cross_attention_dim") == 1024:
        return "sd2"
    return "sd15"


def from_unet(unet, source: str = "model") -> str:
    return from_unet_config(dict(unet.config), source)


def _folder(path: Path, source: str) -> str:
    index = path / "model_index.json"
    if index.is_file():
        cls = json.loads(index.read_text()).get("_class_name", "")
        if cls in _UNSUPPORTED:
            raise _refuse(source, _UNSUPPORTED[cls])
        if (path / "unet" / "config.json").is_file():  # SD 1 and 2 share a pipeline class: the UNet tells
            return from_unet_config(json.loads((path / "unet" / "config.json").read_text()), source)
        if (path / "transformer").is_dir():
            raise _refuse(source, f"a transformer model ({cls or 'unknown pipeline'})")
        if cls in _PIPELINE_FAMILY:
            return _PIPELINE_FAMILY[cls]
        raise _refuse(source, f"a {cls or 'diffusers'} folder without a UNet")
    if (path / "unet" / "config.json").is_file():
        return from_unet_config(json.loads((path / "unet" / "config.json").read_text()), source)
    raise ValueError(f"model: {source} is a folder without model_index.json or unet/config.json; "
                     "give a diffusers model folder, a single .safetensors file or a hub id")


def tensor_names(path: Path, allow_pickle: bool = False) -> list[str]:
    """Names of the tensors in a single weights file; safetensors: from the header alone."""
    if path.suffix.lower() == ".safetensors":
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError(f"model: {path} is not a safetensors file (too short)")
            (n,) = struct.unpack("<Q", head)
            if n > 100_000_000:
                raise ValueError(f"model: {path} is not a safetensors file (header size {n})")
            try:
                header = json.loads(f.read(n))
            except ValueError as e:
                raise ValueError(f"model: {path} is not a safetensors file ({e})") from None
        return [k for k in header if k != "__metadata__"]
    if not allow_pickle:
        raise ValueError(f"model: {path} is a pickle checkpoint; pass --allow-pickle if you trust it")
    import torch

    sd = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
    sd = sd.get("state_dict", sd)
    return list(sd)


def from_tensor_names(names: list[str], source: str = "model") -> str:
    """Family of a single-file checkpoint from its tensor names (the layouts model sites distribute)."""
    has = lambda prefix: any(n.startswith(prefix) for n in names)  # noqa: E731
    if has("model.diffusion_model.joint_blocks.") or has("joint_blocks."):
        raise _refuse(source, "a Stable Diffusion 3 checkpoint (MM-DiT transformer)")
    if has("double_blocks.") or has("model.diffusion_model.double_blocks."):
        raise _refuse(source, "a Flux checkpoint (transformer)")
    if has("conditioner.embedders.1."):
        return "sdxl"
    if has("conditioner.embedders.0.model."):
        raise _refuse(source, "an SDXL refiner (it conditions on one text encoder and an aesthetic score)")
    if has("cond_stage_model.model."):  # OpenCLIP ViT-H text encoder
        return "sd2"
    if has("cond_stage_model.transformer.") or has("model.diffusion_model.input_blocks."):
        return "sd15"
    raise ValueError(f"model: {source} holds no Stable Diffusion UNet (no model.diffusion_model.* tensors); "
                     f"supported families: {SUPPORTED}")


def _hub(source: str) -> str | None:
    """Family of a hub model from its configs (None when they cannot be fetched: offline, private)."""
    try:
        from huggingface_hub import hf_hub_download

        index = json.loads(Path(hf_hub_download(source, "model_index.json")).read_text())
    except (ImportError, OSError, ValueError):
        return None
    cls = index.get("_class_name", "")
    if cls in _UNSUPPORTED:
        raise _refuse(source, _UNSUPPORTED[cls])
    try:
        return from_unet_config(json.loads(Path(hf_hub_download(source, "unet/config.json")).read_text()), source)
    except (OSError, ValueError) as e:
        if isinstance(e, UnsupportedModel):
            raise
        return _PIPELINE_FAMILY.get(cls)


def detect(source: str, kind: str, allow_pickle: bool = False) -> str | None:
    """Family name of a model source of ``kind`` ('folder', 'file', 'hub'); None for a hub id whose
    configs cannot be fetched (its loaded UNet tells)."""
    path = Path(source).expanduser()
    if kind == "folder":
        return _folder(path, source)
    if kind == "file":
        return from_tensor_names(tensor_names(path, allow_pickle), source)
    return _hub(source)
