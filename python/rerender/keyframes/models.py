"""Loading the diffusion models: base model, custom VAE, LoRA, ControlNets.

Sources: a hub id, a local diffusers folder, or a single weights file. Single ``.safetensors``
files are loaded by diffusers' ``from_single_file``; pickle checkpoints (``.ckpt``, ``.pt``,
``.pth``, ``.bin``) can run code when unpickled, so they are refused unless explicitly allowed:
single files by their extension, folders and hub ids by loading with ``use_safetensors=True``
(a folder holding only ``.bin`` weights is refused with an error naming ``--allow-pickle``).
LoRA files are applied through diffusers' LoRA loader (peft) with a scale, not merged by hand.

Memory (``offload``): ``model`` keeps one group of models on the GPU at a time (text encoder;
UNet + ControlNets; VAE; image encoder) through accelerate's offload hooks, ``sequential`` streams
every layer's weights (accelerate's ``cpu_offload``).
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from .weights import PICKLE_SUFFIXES, SAFE_SUFFIXES, missing_weights, parse_lora  # noqa: F401 (re-exported)


class _QuietImageProcessorFallback(logging.Filter):
    """transformers warns that its CLIP/SigLIP image processors fall back to PIL without torchvision;
    the pipeline never uses them (no safety checker, no feature extractor), so the notice is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


logging.getLogger("transformers.utils.import_utils").addFilter(_QuietImageProcessorFallback())


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
    offload: str = "none"
    offloader: object = None  # the GroupOffload of offload="model" (tests inspect it)
    image_encoder: object = None  # CLIP image encoder of an IP-Adapter
    ip_pipeline: object = None  # the pipeline holding the IP-Adapter (image embeddings, adapter scale)
    family: str = "sd15"  # keyframes.families: how prompts become conditioning, the family's defaults
    text_encoder_2: object = None  # SDXL's second text encoder (OpenCLIP bigG, with projection)
    tokenizer_2: object = None
    annotators: dict = dataclasses.field(default_factory=dict)
    """Condition annotators (HED, depth estimators) loaded for these components under their offload policy
    (:func:`offload_annotator`)."""


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


def safetensors_only(allow_pickle: bool) -> bool | None:
    """``use_safetensors`` for diffusers/transformers loaders: True (refuse pickle) unless allowed;
    None lets the loader prefer safetensors and fall back to pickle weights."""
    return None if allow_pickle else True


def _refuse_pickle_errors(what: str, source: str, allow_pickle: bool, load):
    """Run ``load()``; a failure to find safetensors weights becomes an error naming --allow-pickle, and a
    hub id that is neither cached nor downloadable one saying how to pass local weights."""
    try:
        return load()
    except (OSError, ValueError) as e:
        missing = missing_weights(source) if Path(source).expanduser().is_dir() else []
        if missing:  # nothing to load at all: --allow-pickle would not help
            raise FileNotFoundError(f"{what}: {source} has no weights ({', '.join(missing)}: no .safetensors or "
                                    "pickle weights file); copy the model's weight files there, or give a "
                                    "complete folder or a hub id") from None
        if isinstance(e, OSError) and "safetensors" not in str(e) and source_kind(source, True, what) == "hub":
            raise ValueError(_hub_unavailable(what, source, e)) from None
        if allow_pickle or "safetensors" not in str(e):
            raise
        raise ValueError(f"{what}: {source} has no .safetensors weights (pickle .bin/.pt weights can execute code "
                         "when loaded); convert them to .safetensors or pass --allow-pickle (allow_pickle: true) "
                         f"if you trust them. Loader said: {e}") from None


def _hub_unavailable(what: str, source: str, error: OSError) -> str:
    """Why hub id ``source`` could not be loaded, and how to give local weights instead."""
    from .config import DEFAULT_CONTROLNETS, KeyframeConfig

    flag = "--" + what.split("[")[0].replace("_", "-")
    if what == "model" and source == KeyframeConfig.model:
        given = f"no --model was given, and the default {source!r}"
    elif what == "controlnet" and source in DEFAULT_CONTROLNETS.values():
        given = f"no --controlnet was given for this condition, and the default {source!r}"
    else:
        given = f"{flag} {source!r} is not a local folder or file, and as a hub id it"
    cause = error.__cause__ or error.__context__
    reason = f" ({type(cause).__name__})" if cause is not None else ""
    return (f"{what}: {given} is not in the local Hugging Face cache and could not be downloaded{reason}. "
            f"Pass a local diffusers folder or single .safetensors file with {flag} DIR|FILE, or download the "
            f"model while online (e.g. `hf download {source}`; the cache is $HF_HOME, see `rerender info`)")


def _pipeline_kwargs(dtype: torch.dtype, local: bool) -> dict:
    # no dtype here: components are cast once they are loaded (keeps older and newer diffusers happy)
    return dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                local_files_only=local)


def _sdxl_kwargs(kwargs: dict) -> dict:
    # no safety checker in SDXL pipelines; no invisible watermark on latents we never decode through it
    kwargs = {k: v for k, v in kwargs.items() if k not in ("safety_checker", "requires_safety_checker")}
    return dict(kwargs, add_watermarker=False)


def load_base(model: str, *, model_config: str | None = None, allow_pickle: bool = False,
              dtype: torch.dtype = torch.float32, family: str = "auto"):
    """(pipeline, family): the family's diffusers pipeline (components only; its __call__ is not used).
    ``family`` "auto": read from the model (keyframes.families); a hub id is loaded as SD 1.x/2.x
    unless its UNet turns out to be SDXL's, then reloaded with the SDXL pipeline."""
    import diffusers

    from . import families

    kind = source_kind(model, allow_pickle, "model")
    detected = families.detect(model, kind, allow_pickle)
    if family != "auto" and detected is not None and detected != family:
        raise ValueError(f"family: {model} is a {families.get(detected).label} model, not {families.get(family).label}")
    name = family if family != "auto" else (detected or "sd15")
    cls = getattr(diffusers, families.get(name).pipeline)
    if kind == "file":
        kwargs = _pipeline_kwargs(dtype, local=model_config is not None and Path(model_config).is_dir())
        if model_config is not None:
            kwargs["config"] = model_config
        if name == "sdxl":
            kwargs = _sdxl_kwargs(kwargs)
        pipe = cls.from_single_file(str(Path(model).expanduser()), **kwargs)
    else:
        kwargs = _pipeline_kwargs(dtype, local=kind == "folder")
        if name == "sdxl":
            kwargs = _sdxl_kwargs(kwargs)
        pipe = _refuse_pickle_errors("model", model, allow_pickle, lambda: cls.from_pretrained(
            model, use_safetensors=safetensors_only(allow_pickle), **kwargs))
    found = families.from_unet(pipe.unet, model)
    if family == "auto" and detected is None and found != name:  # a hub id: now its UNet tells
        return load_base(model, model_config=model_config, allow_pickle=allow_pickle, dtype=dtype, family=found)
    if found != name:
        raise ValueError(f"family: {model} has the UNet of {families.get(found).label}, not {families.get(name).label}")
    return pipe, name


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
    return _refuse_pickle_errors("vae", source, allow_pickle, lambda: AutoencoderKL.from_pretrained(
        source, subfolder=sub, local_files_only=kind == "folder", use_safetensors=safetensors_only(allow_pickle)))


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
    return _refuse_pickle_errors("controlnet", source, allow_pickle, lambda: ControlNetModel.from_pretrained(
        source, local_files_only=kind == "folder", use_safetensors=safetensors_only(allow_pickle)))


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
            _refuse_pickle_errors(f"lora[{i}]", path, allow_pickle, lambda: pipe.load_lora_weights(
                path, adapter_name=name, use_safetensors=safetensors_only(allow_pickle)))
        names.append(name)
        scales.append(scale)
    pipe.set_adapters(names, adapter_weights=scales)


def load_ip_adapter(pipe, source: str, image_encoder: str | None = None, *, allow_pickle: bool = False,
                    family: str = "sd15") -> None:
    """Load an IP-Adapter into ``pipe`` (diffusers' ``load_ip_adapter``) with its CLIP image encoder.

    ``source``: the adapter file (.safetensors), a folder holding one adapter file (and optionally an
    ``image_encoder/`` folder), or a hub id (the family's file and encoder as laid out in h94/IP-Adapter:
    ``models/ip-adapter_sd15.safetensors``, SDXL ``sdxl_models/ip-adapter_sdxl.safetensors``). ``image_encoder``: a CLIPVisionModelWithProjection
    folder or hub id (default: next to the adapter). Safetensors only unless ``allow_pickle``. Load it
    before installing cross-frame attention: diffusers rebuilds every attention processor here.
    """
    from transformers import CLIPVisionModelWithProjection

    kind = source_kind(source, allow_pickle, "ip_adapter")
    encoder_sub = None
    if kind == "file":
        p = Path(source).expanduser()
        repo, sub, weight = str(p.parent), "", p.name
        default_encoder = p.parent / "image_encoder"
    elif kind == "folder":
        p = Path(source).expanduser()
        suffixes = {".safetensors"} | (PICKLE_SUFFIXES if allow_pickle else set())
        files = sorted(f.name for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
        if len(files) != 1:
            raise ValueError(f"ip_adapter: {source} must hold exactly one adapter weights file (.safetensors"
                             f"{', or a pickle file with --allow-pickle' if not allow_pickle else ''}), found {files}")
        repo, sub, weight = str(p), "", files[0]
        default_encoder = p / "image_encoder"
    else:
        from . import families

        fam = families.get(family)
        if not fam.ip_adapter_file[1]:
            raise ValueError(f"ip_adapter: no published IP-Adapter for {fam.label}; give an adapter file or folder")
        repo, (sub, weight) = source, fam.ip_adapter_file
        hub_encoder = fam.ip_adapter_encoder
        default_encoder = None
    if image_encoder is None:
        if default_encoder is not None:
            if not default_encoder.is_dir():
                raise FileNotFoundError(f"image_encoder: no image_encoder/ folder next to {source}; "
                                        "give the CLIP image encoder with --image-encoder DIR|ID")
            image_encoder = str(default_encoder)
        else:
            image_encoder, encoder_sub = source, hub_encoder
    enc_kind = source_kind(image_encoder, allow_pickle, "image_encoder")
    if enc_kind == "file":
        raise ValueError(f"image_encoder: {image_encoder} is a file; give the encoder's folder or a hub id")
    enc = _refuse_pickle_errors("image_encoder", image_encoder, allow_pickle, lambda: (
        CLIPVisionModelWithProjection.from_pretrained(image_encoder, subfolder=encoder_sub or "",
                                                      use_safetensors=safetensors_only(allow_pickle),
                                                      local_files_only=enc_kind == "folder")))
    pipe.register_modules(image_encoder=enc)  # diffusers then does not load an encoder itself
    pipe.load_ip_adapter(repo, subfolder=sub, weight_name=weight, image_encoder_folder=None,
                         local_files_only=kind != "hub")


def prepare(module, device: torch.device, dtype: torch.dtype):
    """Move to the device, cast only when the dtype differs (diffusers warns on every cast), eval, no grad."""
    module.to(device)
    if next(module.parameters()).dtype != dtype:
        module.to(dtype)
    return module.eval().requires_grad_(False)


class GroupOffload:
    """Keeps one group of models on the execution device at a time (offload="model").

    Each model gets an accelerate hook (``ModelHook``: it also fires for the VAE's ``encode`` /
    ``decode``) that, before the model runs, moves the model's group to the device and every other
    group to CPU memory. UNet and ControlNets form one group: they alternate every step, and moving
    them apart would copy gigabytes per step.
    """

    def __init__(self, groups: dict[str, list], device: torch.device):
        self.groups: dict[str, list] = {}
        self.device = device
        self.active: str | None = None
        self.switches: list[str] = []  # the order groups were activated in (tests, diagnostics)
        for name, mods in groups.items():
            self.add(name, mods)

    def add(self, name: str, modules: list) -> None:
        """A group of its own (e.g. an annotator loaded later), moved to CPU memory now."""
        from accelerate.hooks import add_hook_to_module

        self.groups[name] = [m for m in modules if m is not None]
        for m in self.groups[name]:
            add_hook_to_module(m, _group_hook(self, name))

    def activate(self, name: str) -> None:
        if self.active == name:
            return
        for other, mods in self.groups.items():
            if other != name:
                for m in mods:
                    m.to("cpu")
        if self.device.type == "cuda":
            torch.cuda.empty_cache()  # give the freed blocks back before the next group allocates
        for m in self.groups[name]:
            m.to(self.device)
        self.active = name
        self.switches.append(name)


def _group_hook(owner: GroupOffload, group: str):
    from accelerate.hooks import ModelHook
    from accelerate.utils import send_to_device

    class GroupHook(ModelHook):
        def init_hook(self, module):
            return module.to("cpu")

        def pre_forward(self, module, *args, **kwargs):
            owner.activate(group)
            return send_to_device(args, owner.device), send_to_device(kwargs, owner.device)

    return GroupHook()


def offload_annotator(comps: Components, name: str, module):
    """Put an annotator network (HED, a depth estimator's model: ``controls.py``) under the components'
    offload policy, in its own dtype: "model" makes it a group of its own (on the device only while it
    runs: the UNet's group moves it back to CPU memory), "sequential" streams its layers like the other
    models, "none" puts it on the device."""
    home = torch.device("cpu") if comps.offload != "none" else comps.device
    module = prepare(module, home, next(module.parameters()).dtype)
    if comps.offload == "model":
        comps.offloader.add(f"annotator:{name}", [module])
    elif comps.offload == "sequential":
        from accelerate import cpu_offload

        cpu_offload(module, execution_device=comps.device)
    return module


def apply_offload(comps: Components, mode: str) -> Components:
    """Put the components' models under ``mode`` offloading (see the module docstring)."""
    if mode == "none":
        return comps
    if mode not in ("model", "sequential"):
        raise ValueError(f"offload: {mode!r} is not one of 'none', 'model', 'sequential'")
    groups = {"text": [comps.text_encoder, comps.text_encoder_2], "denoise": [comps.unet, *comps.controlnets], "vae": [comps.vae],
              "image": [comps.image_encoder]}
    if mode == "model":
        comps.offloader = GroupOffload(groups, comps.device)
    else:
        from accelerate import cpu_offload

        for mods in groups.values():
            for m in mods:
                if m is not None:
                    cpu_offload(m, execution_device=comps.device)
    comps.offload = mode
    return comps


@dataclasses.dataclass
class ModelSpec:
    """Which models to load and how: the base model, one ControlNet per condition, and the options of
    :func:`load_components` (the key-frame stage builds it from its config: :meth:`from_config`)."""

    model: str
    controlnets: list[str]
    model_config: str | None = None
    vae: str | None = None
    loras: list[str] = dataclasses.field(default_factory=list)
    allow_pickle: bool = False
    device: str = "auto"
    dtype: str = "auto"
    offload: str = "none"
    ip_adapter: str | None = None
    """An IP-Adapter for a reference image (see :func:`load_ip_adapter`), with its ``image_encoder``."""
    image_encoder: str | None = None
    family: str = "auto"
    """"auto" (read from the model) or a name of ``keyframes.families.FAMILIES`` to insist on."""

    @classmethod
    def from_config(cls, cfg) -> "ModelSpec":
        """The models a :class:`~rerender.keyframes.config.KeyframeConfig` names."""
        return cls(cfg.model, cfg.controlnets(), model_config=cfg.model_config, vae=cfg.vae, loras=list(cfg.lora),
                   allow_pickle=cfg.allow_pickle, device=cfg.device, dtype=cfg.dtype, offload=cfg.offload,
                   ip_adapter=cfg.ip_adapter if cfg.reference else None, image_encoder=cfg.image_encoder,
                   family=cfg.family)


def load_components(spec: ModelSpec) -> Components:
    """Everything the sampler needs, in eval mode, with a DDIM scheduler: on the device, or in CPU
    memory under ``spec.offload`` ("model" / "sequential") hooks that move them to the device when they run.
    A VAE whose config asks for ``force_upcast`` (SDXL's overflows in fp16) stays in fp32 under an
    fp16 run, as diffusers' pipelines upcast it."""
    from diffusers import DDIMScheduler

    if spec.offload not in ("none", "model", "sequential"):
        raise ValueError(f"offload: {spec.offload!r} is not one of 'none', 'model', 'sequential'")
    allow_pickle = spec.allow_pickle
    dev, dt = resolve_device(spec.device, spec.dtype)
    pipe, fam = load_base(spec.model, model_config=spec.model_config, allow_pickle=allow_pickle, dtype=dt,
                          family=spec.family)
    apply_loras(pipe, list(spec.loras or []), allow_pickle)
    if spec.ip_adapter:
        load_ip_adapter(pipe, spec.ip_adapter, spec.image_encoder, allow_pickle=allow_pickle, family=fam)
    vae_model = pipe.vae
    if spec.vae:
        # a single-file VAE takes its config from the base model's (folder, id or --model-config)
        base_cfg = spec.model_config or (spec.model if source_kind(spec.model, allow_pickle) != "file" else None)
        vae_model = load_vae(spec.vae, config=base_cfg, subfolder="vae" if base_cfg else None,
                             allow_pickle=allow_pickle, dtype=dt)
    nets = [load_controlnet(c, allow_pickle=allow_pickle, dtype=dt) for c in spec.controlnets]
    for i, (src, net) in enumerate(zip(spec.controlnets, nets)):
        check_controlnet(net, pipe.unet, src, fam, i)
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    home = dev if spec.offload == "none" else torch.device("cpu")  # offloaded models never sit on the GPU all at once
    enc = pipe.image_encoder if spec.ip_adapter else None
    text_2 = getattr(pipe, "text_encoder_2", None)
    for m in (pipe.unet, pipe.text_encoder, *nets, *([enc] if enc is not None else []),
              *([text_2] if text_2 is not None else [])):
        prepare(m, home, dt)
    upcast = dt == torch.float16 and bool(getattr(vae_model.config, "force_upcast", False))
    prepare(vae_model, home, torch.float32 if upcast else dt)
    comps = Components(unet=pipe.unet, vae=vae_model, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                       scheduler=scheduler, controlnets=nets, device=dev, dtype=dt, image_encoder=enc,
                       ip_pipeline=pipe if spec.ip_adapter else None, family=fam, text_encoder_2=text_2,
                       tokenizer_2=getattr(pipe, "tokenizer_2", None))
    return apply_offload(comps, spec.offload)


def check_controlnet(net, unet, source: str, family: str, index: int = 0) -> None:
    """A ControlNet must be of the base model's family (its residuals are added to that UNet's blocks)."""
    from . import families

    try:
        net_family = families.from_unet_config(dict(net.config), source)
    except families.UnsupportedModel:
        net_family = None
    same_shape = (tuple(net.config.block_out_channels) == tuple(unet.config.block_out_channels)
                  and net.config.cross_attention_dim == unet.config.cross_attention_dim)
    if net_family != family or not same_shape:
        what = families.get(net_family).label if net_family in families.FAMILIES else "another model"
        raise ValueError(f"controlnet[{index}]: {source} is a ControlNet for {what} (blocks "
                         f"{tuple(net.config.block_out_channels)}, text width {net.config.cross_attention_dim}); "
                         f"the base model is {families.get(family).label} (blocks "
                         f"{tuple(unet.config.block_out_channels)}, text width {unet.config.cross_attention_dim})")
