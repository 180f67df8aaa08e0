"""Options of the key-frame stage, with the defaults of docs/method.md section 1.

Load with ``rerender.config.load(KeyframeConfig, path, overrides)``: unknown keys are errors.
Windows are ``(start, end)`` fractions of the denoising trajectory *actually run* (after SDEdit skips
the first ones; for DDIM the fractions of the steps run), so they mean the same thing at every strength
and under every sampler (keyframes.schedulers).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal, Optional

from rerender.files import digest

from .conditions import CONDITIONS, DEFAULT, DEFAULT_CONTROLNETS, NAMES
from .weights import parse_lora

Control = Literal[NAMES]  # the condition types of conditions.CONDITIONS

Family = Literal["auto", "sd15", "sd2", "sdxl"]
Sampler = Literal["ddim", "euler", "euler-a", "dpm++", "lcm", "tcd"]


def parse_schedule(entries: list[str], where: str) -> list[tuple[int, str]]:
    """``["FRAME:TEXT", ...]`` -> ``[(frame, text), ...]`` sorted by frame; frames unique and >= 0."""
    out = []
    for i, entry in enumerate(entries):
        head, sep, text = entry.partition(":")
        try:
            frame = int(head) if sep else -1
        except ValueError:
            frame = -1
        if frame < 0:
            raise ValueError(f"{where}[{i}]: expected 'FRAME:TEXT' with FRAME a frame index >= 0, got {entry!r}")
        out.append((frame, text.strip()))
    frames = [f for f, _ in out]
    dup = sorted({f for f in frames if frames.count(f) > 1})
    if dup:
        raise ValueError(f"{where}: frame {dup[0]} is given more than once")
    return sorted(out)


def scheduled(entries: list[str], frame: int, default: str) -> str:
    """The text of the last schedule entry starting at or before ``frame`` (``default`` before the first)."""
    text = default
    for start, value in parse_schedule(entries, "schedule"):
        if start <= frame:
            text = value
    return text


@dataclasses.dataclass
class KeyframeConfig:
    # --- models -------------------------------------------------------------------------------
    model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    """Base model: hub id, local diffusers folder, or single .safetensors file (.ckpt needs allow_pickle)."""
    model_config: Optional[str] = None
    """Diffusers folder or hub id whose configs describe a single-file model (None: diffusers infers it)."""
    vae: Optional[str] = None
    """Custom VAE: hub id, folder or single file."""
    lora: list[str] = dataclasses.field(default_factory=list)
    """LoRA files as ``FILE`` or ``FILE:SCALE`` (scale 1 by default)."""
    allow_pickle: bool = False
    """Allow .ckpt/.pt/.bin pickle checkpoints (they can execute code when loaded)."""
    family: Family = "auto"
    """Model family (keyframes.families): auto reads it from the model (a folder's model_index.json / UNet
    config, a single file's tensor names, a hub model's UNet once loaded); a name insists on it."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "fp16", "fp32"] = "auto"
    """auto: fp16 on CUDA, fp32 on CPU."""

    # --- conditioning -------------------------------------------------------------------------
    control: list[Control] = dataclasses.field(default_factory=lambda: [DEFAULT])
    """One condition per ControlNet (conditions.CONDITIONS): canny / hed edges of the input frame, a depth
    map, or user images."""
    controlnet: list[str] = dataclasses.field(default_factory=list)
    """ControlNet per condition (id, folder or file); empty: the default for each built-in condition."""
    control_strength: list[float] = dataclasses.field(default_factory=lambda: [0.7])
    """Conditioning scale, one value for all ControlNets or one per ControlNet."""
    control_images: list[str] = dataclasses.field(default_factory=list)
    """For each ``images`` condition, a folder of condition images named NNNN.png by frame index."""
    canny_low: int = 100
    canny_high: int = 200
    depth_model: Optional[str] = None
    """Depth estimator for the ``depth`` condition: a transformers depth-estimation folder or hub id
    (DPT, Depth Anything, ...) loaded with safetensors only (pickle weights need allow_pickle). No default:
    the weights are the user's to supply."""
    control_window: tuple[float, float] = (0.0, 1.0)
    """ControlNet guidance start/end as fractions of the steps actually run (outside it: no ControlNet)."""

    # --- prompts and sampling -----------------------------------------------------------------
    prompt: str = ""
    added_prompt: str = "best quality, extremely detailed"
    negative_prompt: str = ("longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, "
                            "fewer digits, cropped, worst quality, low quality")
    prompt_schedule: list[str] = dataclasses.field(default_factory=list)
    """Prompt per key-frame range, ``FRAME:PROMPT`` (FRAME: zero-based input frame index): key frames at or
    after FRAME use PROMPT until the next entry; before the first entry, ``prompt``. For shots whose content
    changes. ``added_prompt`` is appended to every prompt."""
    negative_prompt_schedule: list[str] = dataclasses.field(default_factory=list)
    """Negative prompt per key-frame range, ``FRAME:TEXT``, like ``prompt_schedule`` (before the first: ``negative_prompt``)."""
    steps: int = 20
    sampler: Sampler = "ddim"
    """The diffusers scheduler that samples: ddim (the paper's), euler, euler-a, dpm++ (DPM-Solver++ 2M), lcm, tcd (few-step models: LCM-/TCD-LoRA,
    distilled checkpoints; use 1-8 steps and guidance_scale 1-2). The constraint windows are fractions of
    the denoising trajectory, so they act at the equivalent points of any schedule."""
    guidance_scale: float = 7.5
    strength: float = 0.75
    """SDEdit strength: fraction of the DDIM schedule run from the noised input (1 = from noise)."""
    seed: int = 0
    interval: int = 10
    """Render every ``interval``-th frame (K); the last frame is always a key too."""
    key_frames: Optional[str] = None
    """Key frames instead of the interval: "auto" (by content change, with shot-cut detection: every
    shot gets its own anchor), a list "0,14,37,80", or a keyplan.json written by an earlier run."""
    key_spacing: tuple[int, int] = (4, 15)
    """Minimum and maximum distance between automatic key frames."""
    init: Literal["sdedit", "inversion"] = "sdedit"
    """Start latent of each key. sdedit (the paper): E(I) noised to the first step run with the shared noise;
    inversion (Tune-A-Video): the DDIM inversion of E(I) under ``source_prompt``, the latent that regenerates
    the input, so structure survives high strengths. Inverted latents are cached in WORK/keys/inversion."""
    source_prompt: str = ""
    """Text describing the input video, used only for the DDIM inversion (empty: unconditional)."""
    inversion_refine: int = 1
    """Fixed-point iterations per inversion step (each one UNet call): the noise is evaluated at the inverted
    latent itself instead of at the cleaner one, so sampling back with the source prompt returns the input."""

    # --- reference image (IP-Adapter) ---------------------------------------------------------
    reference: Optional[str] = None
    """Image (a concept painting, a character sheet) conditioning every key frame beside the prompt,
    through an IP-Adapter."""
    reference_scale: float = 0.5
    """IP-Adapter scale: 0 = the prompt only, 1 = mostly the image (0.5 balances image and text)."""
    ip_adapter: str = "h94/IP-Adapter"
    """IP-Adapter weights: a .safetensors file, a folder holding one adapter file (and image_encoder/), or a hub
    id (its models/ip-adapter_sd15.safetensors and models/image_encoder). Safetensors only unless allow_pickle."""
    image_encoder: Optional[str] = None
    """CLIP image encoder of the IP-Adapter (folder or hub id; default: image_encoder next to the adapter)."""

    # --- hierarchical cross-frame constraints ---------------------------------------------------
    cross_frame_attention: bool = True
    cross_frame_layers: Literal["decoder", "decoder-light", "all"] = "decoder"
    """decoder: every up-block self-attention; decoder-light: skip the widest (1280-ch) ones."""
    cross_window: tuple[float, float] = (0.0, 1.0)
    """Steps (fractions of those actually run) with cross-frame attention (the reference code's
    ``cross_period``); outside it the layers attend to the frame itself. Caches are kept for these steps only."""
    shape_fusion: bool = True
    shape_window: tuple[float, float] = (0.0, 0.1)
    pixel_fusion: bool = True
    pixel_window: tuple[float, float] = (0.5, 0.8)
    fusion_strength: float = 0.5
    """Weight of the warped reference where the flow is reliable (1 = replace)."""
    fusion_detail: float = 0.9
    """Noise kept in fused regions relative to a variance-preserving blend (<1 sharpens texture)."""
    smooth_boundary: bool = True
    """Feather the fusion mask so fused and inpainted regions meet without a seam."""
    fidelity_lambda: float = 1.0
    fidelity_threshold: float = 0.25
    """E* compensation is masked out where |D(E'(I)) - I| (mean over channels, on [-1, 1]) exceeds this."""
    adain: bool = True
    adain_window: tuple[float, float] = (0.8, 1.0)
    color_correction: bool = False
    """Give the inputs the colours of a frame generated from pure noise before translating (so the prompt's
    colours win): the chroma (a, b of CIE Lab) histograms are matched, the input's lightness L is kept."""
    freeu: list[float] = dataclasses.field(default_factory=list)
    """FreeU factors ``[b1, b2, s1, s2]`` (backbone / skip scales of the first two decoder stages); empty: off.
    The FreeU authors' values for SD 1.5: [1.5, 1.6, 0.9, 0.2]; per family: keyframes.families.FAMILIES
    (SD 2.1 [1.4, 1.6, 0.9, 0.2], SDXL [1.3, 1.4, 0.9, 0.2])."""

    # --- memory (cards with 8-12 GB) ------------------------------------------------------------
    offload: Literal["none", "model", "sequential"] = "none"
    """none: everything stays on the GPU. model: only the model in use (text encoder / UNet + ControlNets /
    VAE) is on the GPU, and the cross-frame attention caches live in CPU memory. sequential: weights are
    streamed to the GPU layer by layer (lowest memory, much slower), caches in CPU memory too."""
    vae_tiling: bool = False
    """Encode/decode in overlapping tiles (diffusers' VAE tiling): bounds the VAE's memory above 512 px."""

    # --- optical flow (the backend is the job's: rerender.job.JobConfig.flow) ---------------------
    raft_weights: Optional[str] = None
    """RAFT weights file (torchvision's raft_large / raft_small layout; .safetensors, or .pth with
    allow_pickle). When given, the key-frame fusions (long jumps to the anchor, where DIS is weakest) use RAFT
    flow (cached in WORK/flow/raft_*); the job's flow (DIS by default) stays in use without it."""
    raft_iters: int = 12
    """RAFT refinement iterations (12 as in the paper and torchvision)."""
    mask_dilate: int = 9
    """Occlusion masks are dilated by this many pixels (odd kernel) and blurred before use."""

    # --- resume ---------------------------------------------------------------------------------
    reanchor_every: int = 0
    """Long shots: every N keys the latest key becomes the anchor of the next ones (fusions warp from it,
    short flow jumps) while the shot's first key stays in the cross-frame attention references and AdaIN
    (its states carried forward), so the look does not drift from the first key. 0: one anchor for the shot."""
    save_state: bool = True
    """Keep the anchor's and the latest key's attention inputs on disk (WORK/keys/.state, ~0.5 GB each
    at 512x512) so a stopped stage resumes at the next key; off: a resume re-renders the chain."""

    def __post_init__(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(msg)

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, (list, tuple)) else [value]
            bad = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
            need(not bad, f"{f.name}: must be a finite number, got {bad[0] if bad else None}")
        need(self.steps >= 1, f"steps: must be >= 1, got {self.steps}")
        need(0.0 < self.strength <= 1.0, f"strength: must be in (0, 1], got {self.strength}")
        need(self.guidance_scale >= 0, f"guidance_scale: must be >= 0, got {self.guidance_scale}")
        need(self.interval >= 1, f"interval: must be >= 1, got {self.interval}")
        lo, hi = self.key_spacing
        need(1 <= lo <= hi, f"key_spacing: need 1 <= minimum <= maximum, got ({lo}, {hi})")
        need(len(self.control) >= 1, "control: at least one condition is needed")
        unknown = [c for c in self.control if c not in CONDITIONS]
        need(not unknown, f"control: {unknown[0] if unknown else ''!r} is not one of {', '.join(NAMES)}")
        for name in ("shape_window", "pixel_window", "adain_window", "control_window", "cross_window"):
            a, b = getattr(self, name)
            need(0.0 <= a <= b <= 1.0, f"{name}: need 0 <= start <= end <= 1, got ({a}, {b})")
        need(0.0 <= self.fusion_strength <= 1.0, f"fusion_strength: must be in [0, 1], got {self.fusion_strength}")
        need(0.0 <= self.fusion_detail <= 1.0, f"fusion_detail: must be in [0, 1], got {self.fusion_detail}")
        need(self.fidelity_threshold > 0, f"fidelity_threshold: must be > 0, got {self.fidelity_threshold}")
        need(0 <= self.canny_low <= self.canny_high <= 255,
             f"canny_low/canny_high: need 0 <= low <= high <= 255, got {self.canny_low}/{self.canny_high}")
        need(self.mask_dilate >= 1 and self.mask_dilate % 2 == 1, f"mask_dilate: must be odd and >= 1, got {self.mask_dilate}")
        if self.controlnet:
            need(len(self.controlnet) == len(self.control),
                 f"controlnet: {len(self.controlnet)} given for {len(self.control)} control conditions")
        else:
            defaults = self.default_controlnets()
            for c in self.control:
                need(c in defaults, f"control: {c!r} needs an explicit controlnet"
                     + (f" (no default for the {self.resolved_family()} family)" if c in DEFAULT_CONTROLNETS else ""))
        need(len(self.control_strength) in (1, len(self.control)),
             f"control_strength: give 1 value or {len(self.control)}, got {len(self.control_strength)}")
        parse_schedule(self.prompt_schedule, "prompt_schedule")
        parse_schedule(self.negative_prompt_schedule, "negative_prompt_schedule")
        need(len(self.freeu) in (0, 4), f"freeu: give 4 values [b1, b2, s1, s2] or none, got {len(self.freeu)}")
        need(all(v >= 0 for v in self.freeu), f"freeu: factors must be >= 0, got {self.freeu}")
        need(self.raft_iters >= 1, f"raft_iters: must be >= 1, got {self.raft_iters}")
        need(self.inversion_refine >= 0, f"inversion_refine: must be >= 0, got {self.inversion_refine}")
        need(0.0 <= self.reference_scale <= 10.0, f"reference_scale: must be in [0, 10], got {self.reference_scale}")
        need(self.reanchor_every >= 0, f"reanchor_every: must be >= 0 (0 = off), got {self.reanchor_every}")
        need("depth" not in self.control or bool(self.depth_model),
             "depth_model: the 'depth' condition needs a depth estimator (a transformers folder or hub id)")
        n_images = sum(CONDITIONS[c].needs == "control_images" for c in self.control)
        need(len(self.control_images) == n_images,
             f"control_images: {len(self.control_images)} folders given for {n_images} 'images' conditions")

    def strengths(self) -> list[float]:
        """Conditioning scale per ControlNet."""
        s = self.control_strength
        return list(s) * len(self.control) if len(s) == 1 else list(s)

    def prompts_for(self, frame: int) -> tuple[str, str]:
        """(prompt, negative prompt) of key frame ``frame`` after the schedules (``added_prompt`` appended)."""
        prompt = scheduled(self.prompt_schedule, frame, self.prompt)
        positive = ", ".join(p for p in (prompt.strip(), self.added_prompt.strip()) if p)
        return positive, scheduled(self.negative_prompt_schedule, frame, self.negative_prompt)

    def segment_anchor(self, position: int) -> int:
        """Position (in the list of keys) of the anchor that key ``position`` (>= 1) warps from: 0, or with
        ``reanchor_every`` N the latest multiple of N before it."""
        n = self.reanchor_every
        return 0 if n <= 0 or position <= 0 else ((position - 1) // n) * n

    def inversion_fingerprint(self) -> str:
        """Hash of the options an inverted latent depends on (model, conditions, source prompt, schedule);
        the target prompt and the constraints are not among them, so prompt changes reuse the cache."""
        keys = ("model", "model_config", "vae", "lora", "dtype", "control", "controlnet", "control_strength",
                "control_images", "canny_low", "canny_high", "depth_model", "control_window", "source_prompt",
                "steps", "strength", "inversion_refine", "freeu", "vae_tiling")
        data = {k: getattr(self, k) for k in keys}
        if self.sampler != "ddim":  # the inversion follows the schedule's noise levels
            data["sampler"] = self.sampler
        return digest(data)

    def resolved_family(self) -> str:
        """The family: as given, else read from a local model (a hub id counts as SD 1.5 here; the
        loader reads it from the UNet)."""
        if self.family != "auto":
            return self.family
        if self.model is None:
            return "sd15"
        from pathlib import Path

        from . import families

        p = Path(self.model).expanduser()
        if p.is_dir():
            return families.detect(str(p), "folder")
        if p.is_file() and p.suffix.lower() == ".safetensors":
            return families.detect(str(p), "file")
        return "sd15"

    def default_controlnets(self) -> dict[str, str]:
        """Default ControlNet per built-in condition for this model's family."""
        from . import families

        return families.get(self.resolved_family()).default_controlnets

    def weight_sources(self, inversion: bool = False) -> list[str]:
        """Every model source (file, folder or hub id) whose weights the keys depend on; ``inversion``:
        those the inverted latents depend on (no IP-Adapter: the inversion runs without the reference)."""
        out = [self.model, self.model_config, self.vae, *(parse_lora(spec)[0] for spec in self.lora),
               *self.controlnets(), self.depth_model]
        if not inversion:
            out += [self.ip_adapter, self.image_encoder] if self.reference else []
            out.append(self.raft_weights)
        return [s for s in out if s]

    def controlnets(self) -> list[str]:
        """ControlNet source per condition (explicit or the family's default for its type)."""
        return list(self.controlnet) if self.controlnet else [self.default_controlnets()[c] for c in self.control]

    def fingerprint(self) -> str:
        """Hash of the options that change rendered pixels. Key choice and ``device`` are left out:
        which frames are keys is handled by the stage, whose per-key fingerprints chain over the
        previous key (so a different K re-renders every key after the anchor); ``offload`` only moves
        the same computation between memories."""
        data = dataclasses.asdict(self)
        for key in ("interval", "key_frames", "key_spacing", "device", "save_state", "offload"):
            data.pop(key)
        # the paper's scheduler and a read family add nothing: fingerprints of earlier runs stay valid
        if data["sampler"] == "ddim":
            data.pop("sampler")
        if data["family"] == "auto":
            data.pop("family")
        return digest(data)
