"""Options of the key-frame stage, with the defaults of docs/method.md section 1.

Load with ``rerender.config.load(KeyframeConfig, path, overrides)``: unknown keys are errors.
Windows are ``(start, end)`` fractions of the DDIM steps *actually run* (after SDEdit skips the
first ones), so they mean the same thing at every strength.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Literal, Optional

Control = Literal["canny", "hed", "images"]

# Default ControlNet for each built-in condition (hub ids; any id, folder or file may replace them).
DEFAULT_CONTROLNETS = {
    "canny": "lllyasviel/sd-controlnet-canny",
    "hed": "lllyasviel/sd-controlnet-hed",
}


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
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "fp16", "fp32"] = "auto"
    """auto: fp16 on CUDA, fp32 on CPU."""

    # --- conditioning -------------------------------------------------------------------------
    control: list[Control] = dataclasses.field(default_factory=lambda: ["hed"])
    """One condition per ControlNet: canny / hed edges of the input frame, or user images."""
    controlnet: list[str] = dataclasses.field(default_factory=list)
    """ControlNet per condition (id, folder or file); empty: the default for each built-in condition."""
    control_strength: list[float] = dataclasses.field(default_factory=lambda: [0.7])
    """Conditioning scale, one value for all ControlNets or one per ControlNet."""
    control_images: list[str] = dataclasses.field(default_factory=list)
    """For each ``images`` condition, a folder of condition images named NNNN.png by frame index."""
    canny_low: int = 100
    canny_high: int = 200

    # --- prompts and sampling -----------------------------------------------------------------
    prompt: str = ""
    added_prompt: str = "best quality, extremely detailed"
    negative_prompt: str = ("longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, "
                            "fewer digits, cropped, worst quality, low quality")
    steps: int = 20
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

    # --- hierarchical cross-frame constraints ---------------------------------------------------
    cross_frame_attention: bool = True
    cross_frame_layers: Literal["decoder", "decoder-light", "all"] = "decoder"
    """decoder: every up-block self-attention; decoder-light: skip the widest (1280-ch) ones."""
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
    """Match the inputs' colour histogram to a frame generated from pure noise before translating."""

    # --- optical flow (the backend is the job's: rerender.job.JobConfig.flow) ---------------------
    mask_dilate: int = 9
    """Occlusion masks are dilated by this many pixels (odd kernel) and blurred before use."""

    # --- resume ---------------------------------------------------------------------------------
    save_state: bool = True
    """Keep the anchor's and the latest key's attention inputs on disk (WORK/keys/.state, ~0.5 GB each
    at 512x512) so a stopped stage resumes at the next key; off: a resume re-renders the chain."""

    def __post_init__(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(msg)

        need(self.steps >= 1, f"steps: must be >= 1, got {self.steps}")
        need(0.0 < self.strength <= 1.0, f"strength: must be in (0, 1], got {self.strength}")
        need(self.guidance_scale >= 0, f"guidance_scale: must be >= 0, got {self.guidance_scale}")
        need(self.interval >= 1, f"interval: must be >= 1, got {self.interval}")
        lo, hi = self.key_spacing
        need(1 <= lo <= hi, f"key_spacing: need 1 <= minimum <= maximum, got ({lo}, {hi})")
        need(len(self.control) >= 1, "control: at least one condition is needed")
        for name in ("shape_window", "pixel_window", "adain_window"):
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
            for c in self.control:
                need(c in DEFAULT_CONTROLNETS, f"control: {c!r} needs an explicit controlnet")
        need(len(self.control_strength) in (1, len(self.control)),
             f"control_strength: give 1 value or {len(self.control)}, got {len(self.control_strength)}")
        n_images = sum(c == "images" for c in self.control)
        need(len(self.control_images) == n_images,
             f"control_images: {len(self.control_images)} folders given for {n_images} 'images' conditions")

    def strengths(self) -> list[float]:
        """Conditioning scale per ControlNet."""
        s = self.control_strength
        return list(s) * len(self.control) if len(s) == 1 else list(s)

    def controlnets(self) -> list[str]:
        """ControlNet source per condition (explicit or the default for its type)."""
        return list(self.controlnet) if self.controlnet else [DEFAULT_CONTROLNETS[c] for c in self.control]

    def fingerprint(self) -> str:
        """Hash of the options that change rendered pixels. Key choice and ``device`` are left out:
        which frames are keys is handled by the stage, whose per-key fingerprints chain over the
        previous key (so a different K re-renders every key after the anchor)."""
        data = dataclasses.asdict(self)
        for key in ("interval", "key_frames", "key_spacing", "device", "save_state"):
            data.pop(key)
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
