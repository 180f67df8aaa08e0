"""Loading the diffusion models: base model, custom VAE, LoRA, ControlNets.

Sources: a hub id, a local diffusers folder, or a single weights file. Single ``.safetensors``
files are loaded by diffusers' ``from_single_file``; pickle checkpoints (``.ckpt``, ``.pt``,
``.pth``, ``.bin``) can run code when unpickled, so they are refused unless explicitly allowed.
LoRA files are applied through diffusers' LoRA loader (peft) with a scale, not merged by hand.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl"}
SAFE_SUFFIXES = {".safetensors"}


@dataclasses.dataclass
class Components:
    """The diffusers modules the sampler uses, on one device and dtype."""

    unet: object
    vae: object
    text_encoder: object
    tokenizer: object
    scheduler: object
    controlnets: list
    device: torch.device
    dtype: torch.dtype


def resolve_device(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """'auto' picks CUDA when available; fp16 on CUDA, fp32 on CPU (fp16 on CPU is slow and lossy)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but torch reports no CUDA device")
    dev = torch.device(device)
    if dtype == "auto":
        dt = torch.float16 if dev.type == "cuda" else torch.float32
    elif dtype in ("fp16", "fp32"):
        dt = torch.float16 if dtype == "fp16" else torch.float32
    else:
        raise ValueError(f"dtype: {dtype!r} is not one of 'auto', 'fp16', 'fp32'")
    return dev, dt


def source_kind(source: str, allow_pickle: bool = False, what: str = "model") -> str:
    """Classify a model source: 'folder', 'file' or 'hub'; refuses pickle files unless allowed."""
    p = Path(source).expanduser()
    suffix = p.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise ValueError(f"{what}: {source} is a pickle checkpoint, which can execute code when loaded; "
                             "convert it to .safetensors or pass --allow-pickle (allow_pickle: true) if you trust it")
        if not p.is_file():
            raise FileNotFoundError(f"{what}: file {source} does not exist")
        return "file"
    if suffix in SAFE_SUFFIXES:
        if not p.is_file():
            raise FileNotFoundError(f"{what}: file {source} does not exist")
        return "file"
    if p.is_dir():
        return "folder"
    if p.exists():
        raise ValueError(f"{what}: {source} is a file of unknown type (expected .safetensors or a diffusers folder)")
    looks_like_path = source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source
    if looks_like_path:
        raise FileNotFoundError(f"{what}: {source} does not exist")
    return "hub"


def parse_lora(spec: str) -> tuple[str, float]:
    """``FILE`` or ``FILE:SCALE`` -> (file, scale); the suffix is a scale only if it parses as a number."""
    path, sep, tail = spec.rpartition(":")
    if sep:
        try:
            return path, float(tail)
        except ValueError:
            pass
    return spec, 1.0


def _pipeline_kwargs(dtype: torch.dtype, local: bool) -> dict:
    # no dtype here: components are cast once they are loaded (keeps older and newer diffusers happy)
    return dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                local_files_only=local)


def load_base(model: str, *, model_config: str | None = None, allow_pickle: bool = False,
              dtype: torch.dtype = torch.float32):
    """A diffusers StableDiffusionPipeline (components only; its __call__ is not used)."""
    from diffusers import StableDiffusionPipeline

    kind = source_kind(model, allow_pickle, "model")
    if kind == "file":
        kwargs = _pipeline_kwargs(dtype, local=model_config is not None and Path(model_config).is_dir())
        if model_config is not None:
            kwargs["config"] = model_config
        return StableDiffusionPipeline.from_single_file(str(Path(model).expanduser()), **kwargs)
    return StableDiffusionPipeline.from_pretrained(model, **_pipeline_kwargs(dtype, local=kind == "folder"))


def load_vae(source: str, *, config: str | None = None, subfolder: str | None = None,
             allow_pickle: bool = False, dtype: torch.dtype = torch.float32):
    """AutoencoderKL from a hub id, folder or single file (``config``/``subfolder``: where the
    single file's config lives, e.g. the base model's folder and "vae")."""
    from diffusers import AutoencoderKL

    kind = source_kind(source, allow_pickle, "vae")
    if kind == "file":
        kwargs = {}
        if config is not None:
            kwargs["config"] = config
            kwargs["subfolder"] = subfolder
        return AutoencoderKL.from_single_file(str(Path(source).expanduser()), **kwargs)
    sub = "vae" if kind == "folder" and (Path(source) / "vae").is_dir() else None
    return AutoencoderKL.from_pretrained(source, subfolder=sub, local_files_only=kind == "folder")


def load_controlnet(source: str, *, config: str | None = None, allow_pickle: bool = False,
                    dtype: torch.dtype = torch.float32):
    """ControlNetModel from a hub id, folder or single file (``config``: folder/id describing a single file)."""
    from diffusers import ControlNetModel

    kind = source_kind(source, allow_pickle, "controlnet")
    if kind == "file":
        kwargs = {}
        if config is not None:
            kwargs["config"] = config
        return ControlNetModel.from_single_file(str(Path(source).expanduser()), **kwargs)
    return ControlNetModel.from_pretrained(source, local_files_only=kind == "folder")


def apply_loras(pipe, loras: list[str], allow_pickle: bool = False) -> None:
    """Load LoRA files into the pipeline's UNet / text encoder with their scales (needs peft)."""
    if not loras:
        return
    names, scales = [], []
    for i, spec in enumerate(loras):
        path, scale = parse_lora(spec)
        kind = source_kind(path, allow_pickle, f"lora[{i}]")
        name = f"lora{i}"
        if kind == "file":
            p = Path(path).expanduser()
            pipe.load_lora_weights(str(p.parent), weight_name=p.name, adapter_name=name)
        else:
            pipe.load_lora_weights(path, adapter_name=name)
        names.append(name)
        scales.append(scale)
    pipe.set_adapters(names, adapter_weights=scales)


def prepare(module, device: torch.device, dtype: torch.dtype):
    """Move to the device, cast only when the dtype differs (diffusers warns on every cast), eval, no grad."""
    module.to(device)
    if next(module.parameters()).dtype != dtype:
        module.to(dtype)
    return module.eval().requires_grad_(False)


def load_components(model: str, controlnets: list[str], *, model_config: str | None = None,
                    vae: str | None = None, loras: list[str] | None = None, allow_pickle: bool = False,
                    device: str = "auto", dtype: str = "auto") -> Components:
    """Everything the sampler needs, moved to the device, in eval mode, with a DDIM scheduler."""
    from diffusers import DDIMScheduler

    dev, dt = resolve_device(device, dtype)
    pipe = load_base(model, model_config=model_config, allow_pickle=allow_pickle, dtype=dt)
    apply_loras(pipe, list(loras or []), allow_pickle)
    vae_model = pipe.vae
    if vae:
        # a single-file VAE takes its config from the base model's (folder, id or --model-config)
        base_cfg = model_config or (model if source_kind(model, allow_pickle) != "file" else None)
        vae_model = load_vae(vae, config=base_cfg, subfolder="vae" if base_cfg else None,
                             allow_pickle=allow_pickle, dtype=dt)
    nets = [load_controlnet(c, allow_pickle=allow_pickle, dtype=dt) for c in controlnets]
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    for m in (pipe.unet, vae_model, pipe.text_encoder, *nets):
        prepare(m, dev, dt)
    return Components(unet=pipe.unet, vae=vae_model, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                      scheduler=scheduler, controlnets=nets, device=dev, dtype=dt)
