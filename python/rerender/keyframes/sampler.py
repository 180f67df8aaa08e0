"""The key-frame sampler: DDIM + ControlNet + CFG with the hierarchical cross-frame constraints.

One key frame i (docs/method.md, section 1):
  x_T = sqrt(a_T) E(I_i) + sqrt(1 - a_T) z             SDEdit, the same z for every frame
  for each step k actually run:
      eps = CFG(UNet(x_t, ControlNet(edges of I_i)))   cross-frame attention on [anchor; previous]
      x0  = predicted clean latent
      x0 <- shape-aware fusion with the warped anchor x0    (k in shape_window)
      x0 <- AdaIN to the anchor's x0 statistics             (k in adain_window)
      x_{t-1} = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps      (DDIM, eta = 0)
      x_{t-1} <- pixel-aware fusion with E*(warped pixels)  (k in pixel_window, second pass only)
With pixel-aware fusion on, a rough pass (no pixel fusion) renders the frame first; its pixels
fill the reference where both the anchor and the previous key are occluded. The second pass is
identical to the rough one until the pixel window opens, so it resumes from the rough pass's latent
at that step instead of repeating those steps (same result, about a quarter fewer UNet calls).
ControlNet runs only in ``control_window`` and cross-frame attention only in ``cross_window``
(fractions of the steps run, like the constraint windows).

Start latent: SDEdit (above), or with ``init="inversion"`` the DDIM inversion of E(I_i) under the
source prompt (Tune-A-Video): the latent that DDIM maps back to the input, so structure is kept
at any strength. A reference image (``reference``) conditions every step through an IP-Adapter,
whose processors sit on the cross-attention layers beside ours on the self-attention layers.
Over a long shot, ``origin`` (the shot's first key) can be kept in the attention references next
to a newer segment anchor (re-anchoring), and AdaIN follows the origin.
"""
from __future__ import annotations

import dataclasses
import numpy as np
import torch

from . import attention, constraints, encoder, schedulers, text
from .config import KeyframeConfig
from .models import Components


@dataclasses.dataclass
class FrameMemory:
    """What later key frames need from a rendered one.

    ``attn``: self-attention inputs per (layer, step) of its final pass; ``x0``/``stats``: its
    predicted clean latent (shape-fusion steps) and channel statistics (AdaIN steps), read when it is
    the anchor (or a segment anchor).
    """

    image: np.ndarray
    attn: dict = dataclasses.field(default_factory=dict)
    x0: dict = dataclasses.field(default_factory=dict)
    stats: dict = dataclasses.field(default_factory=dict)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Flat tensor dict (for safetensors)."""
        out = {f"attn|{layer}|{step}": t.contiguous().cpu() for (layer, step), t in self.attn.items()}
        out.update({f"x0|{k}": t.contiguous().cpu() for k, t in self.x0.items()})
        for k, (m, s) in self.stats.items():
            out[f"mean|{k}"] = m.contiguous().cpu()
            out[f"std|{k}"] = s.contiguous().cpu()
        return out

    @classmethod
    def from_tensors(cls, image: np.ndarray, tensors: dict[str, torch.Tensor], device=None) -> "FrameMemory":
        mem = cls(image=image)
        stats: dict[int, list] = {}
        for key, t in tensors.items():
            parts = key.split("|")
            t = t.to(device)
            if parts[0] == "attn":
                mem.attn[(parts[1], int(parts[2]))] = t
            elif parts[0] == "x0":
                mem.x0[int(parts[1])] = t
            else:
                stats.setdefault(int(parts[1]), [None, None])[0 if parts[0] == "mean" else 1] = t
        mem.stats = {k: (v[0], v[1]) for k, v in stats.items()}
        return mem


@dataclasses.dataclass
class Geometry:
    """Flows from the current frame to the anchor / previous key (pixels, H x W x 2, on the current
    frame's grid) and their occlusion masks (H x W, 1 = occluded), as ``rerender.occlusion`` gives."""

    flow_anchor: np.ndarray
    occ_anchor: np.ndarray
    flow_prev: np.ndarray
    occ_prev: np.ndarray

    @classmethod
    def identity(cls, height: int, width: int) -> "Geometry":
        """Zero flow, nothing occluded (identical frames)."""
        z = np.zeros((height, width, 2), np.float32)
        m = np.zeros((height, width), np.uint8)
        return cls(z, m, z, m)


@dataclasses.dataclass
class LoopPlan:
    """What one DDIM pass (:meth:`KeyframeSampler._loop`) does beside denoising."""

    emb: text.TextConditioning | None = None
    """Text conditioning (default: the config's prompts)."""
    refs: list = dataclasses.field(default_factory=list)
    """Attention inputs of the reference frames (cross-frame attention in its window)."""
    record: FrameMemory | None = None
    """Where this pass's attention inputs (and with ``keep_anchor`` its x0 / statistics) are kept."""
    keep_anchor: bool = False
    shape: tuple | None = None
    """(anchor memory, latent flow, latent occlusion): shape-aware fusion."""
    adain_ref: FrameMemory | None = None
    """The memory whose statistics AdaIN matches."""
    pixel: tuple | None = None
    """(E* latent, weight, generator): pixel-aware fusion."""
    keep: tuple | None = None
    """(E(input), noise, latent matte): masked SDEdit; outside the matte every step's result is replaced
    by the input's latent noised to the next timestep, and the pass's result by the clean E(input)."""
    snapshot: int | None = None
    """Keep the input of that step in ``trace["snapshot"]`` and the scheduler's state in ``trace["resume"]``."""
    resume: tuple | None = None
    """A ``trace["resume"]``: continue that pass's scheduler state (the fused pass after the rough one)."""
    traj: schedulers.Trajectory | None = None
    """The trajectory (default: the config's scheduler at its strength)."""


@dataclasses.dataclass
class KeyResult:
    image: np.ndarray
    memory: FrameMemory
    trace: dict  # constraint name -> step indices where it ran in the final pass
    rough: np.ndarray | None = None
    latent: torch.Tensor | None = None  # the final latent (before decoding)


class KeyframeSampler:
    """Renders key frames in order: ``render(frame, conditions, anchor, prev, geometry)``."""

    def __init__(self, comps: Components, cfg: KeyframeConfig):
        self.c = comps
        self.cfg = cfg
        self.state = attention.CrossFrameState()
        # with offloading, the attention caches (the largest per-frame state) live in CPU memory
        self.state.store_device = torch.device("cpu") if comps.offload != "none" else None
        self.attn_layers: list[str] = []
        if cfg.cross_frame_attention:
            self.attn_layers = attention.install(comps.unet, cfg.cross_frame_layers, self.state)
        else:
            attention.uninstall(comps.unet)  # components may be shared with an earlier sampler
        # components may be shared: every sampler sets (or clears) the options that live on the models
        if cfg.freeu:
            b1, b2, s1, s2 = cfg.freeu
            comps.unet.enable_freeu(s1=s1, s2=s2, b1=b1, b2=b2)
        else:
            comps.unet.disable_freeu()
        if cfg.vae_tiling:
            comps.vae.enable_tiling()
        else:
            comps.vae.disable_tiling()
        self.cfg_batch = cfg.guidance_scale > 1.0
        self._prompt_cache: dict[tuple, text.TextConditioning] = {}
        self.prediction = comps.scheduler.config.prediction_type
        self.traj = self.trajectory(cfg.strength)
        self.timesteps = self.traj.timesteps
        self.n_steps = len(self.timesteps)
        self.windows = self.windows_for(self.traj)
        self._noise: dict[tuple, torch.Tensor] = {}
        self.image_embeds = self._reference_embeds()

    def windows_for(self, traj: schedulers.Trajectory) -> dict[str, range]:
        """The steps of ``traj`` in each constraint's window: the windows are fractions of the denoising
        trajectory actually run (schedulers.window_steps; for DDIM's uniform steps the fractions of the
        steps run), so a schedule of another length (the colour reference's, from noise) gets its own."""
        cfg, pos = self.cfg, traj.positions
        return {
            "shape": schedulers.window_steps(pos, cfg.shape_window) if cfg.shape_fusion else range(0),
            "pixel": schedulers.window_steps(pos, cfg.pixel_window) if cfg.pixel_fusion else range(0),
            "adain": schedulers.window_steps(pos, cfg.adain_window) if cfg.adain else range(0),
            "control": schedulers.window_steps(pos, cfg.control_window),
            "cross": schedulers.window_steps(pos, cfg.cross_window) if self.attn_layers else range(0),
        }

    def _reference_embeds(self) -> list[torch.Tensor] | None:
        """IP-Adapter image embeddings of the reference (``[negative; positive]`` with CFG), or None."""
        cfg, pipe = self.cfg, self.c.ip_pipeline
        if pipe is None:
            if cfg.reference:
                raise ValueError("reference: the components were loaded without an IP-Adapter "
                                 "(ModelSpec(..., ip_adapter=...))")
            return None
        if not cfg.reference:
            raise ValueError("reference: these components carry an IP-Adapter, so a reference image is needed")
        from rerender.media import read_image

        image = read_image(cfg.reference)
        pipe.set_ip_adapter_scale(cfg.reference_scale)
        with torch.no_grad():
            embeds = pipe.prepare_ip_adapter_image_embeds(image, None, self.c.device, 1, self.cfg_batch)
        return [e.to(self.c.device, self.c.dtype) for e in embeds]

    @property
    def cache_device(self) -> torch.device:
        """Where attention caches are kept (CPU memory when offloading)."""
        return self.state.store_device or self.c.device

    # --- set-up -------------------------------------------------------------------------------
    def trajectory(self, strength: float) -> schedulers.Trajectory:
        """The config's scheduler over the steps actually run at an SDEdit ``strength``."""
        return schedulers.Trajectory(self.cfg.sampler, self.c.scheduler.config, self.cfg.steps, strength)

    def schedule(self, strength: float) -> list[int]:
        """Timesteps actually run for an SDEdit ``strength`` (the first ones are skipped)."""
        return self.trajectory(strength).timesteps

    @torch.no_grad()
    def embeddings(self, prompts: tuple[str, str] | None = None,
                   size: tuple[int, int] | None = None) -> text.TextConditioning:
        """Text conditioning of (positive, negative) prompts, ``[negative; positive]`` with CFG;
        ``None``: the config's prompts for frame 0 (no schedule). ``size``: the frame's (H, W) (SDXL's
        size conditioning). Cached per pair and size."""
        positive, negative = prompts if prompts is not None else self.cfg.prompts_for(0)
        size = tuple(size) if size is not None else (0, 0)
        key = (positive, negative, size if self.c.family == "sdxl" else None)
        if key not in self._prompt_cache:
            texts = [negative, positive] if self.cfg_batch else [positive]
            self._prompt_cache[key] = text.encode(self.c, texts, size)
        return self._prompt_cache[key]

    def noise(self, shape: tuple) -> torch.Tensor:
        """The SDEdit noise z: one draw per seed and latent shape, shared by every frame."""
        if shape not in self._noise:
            g = torch.Generator("cpu").manual_seed(self.cfg.seed)
            self._noise[shape] = torch.randn(shape, generator=g).to(self.c.device, self.c.dtype)
        return self._noise[shape]

    # --- one UNet evaluation --------------------------------------------------------------------
    def _eps(self, x: torch.Tensor, t: int, conds: list[torch.Tensor], cond: text.TextConditioning,
             control: bool = True) -> torch.Tensor:
        """Guided model output at ``t``; ``control``: add the ControlNets' residuals (their window)."""
        c = self.c
        emb = cond.emb
        n = emb.shape[0]
        x_in = x.expand(n, -1, -1, -1)
        t_in = torch.full((n,), t, device=c.device, dtype=torch.long)
        added = dict(cond.added) or None  # SDXL: pooled text embeddings and size/crop time ids
        down = mid = None
        for net, image, scale in zip(c.controlnets if control else [], conds, self.cfg.strengths()):
            d, m = net(x_in, t_in, encoder_hidden_states=emb, controlnet_cond=image.expand(n, -1, -1, -1),
                       conditioning_scale=scale, added_cond_kwargs=added, return_dict=False)
            down = list(d) if down is None else [a + b for a, b in zip(down, d)]
            mid = m if mid is None else mid + m
        extra = added
        if self.image_embeds is not None:  # [negative; positive] rows, or the positive one without CFG
            extra = dict(added or {}, image_embeds=[e if e.shape[0] == n else e[-n:] for e in self.image_embeds])
        out = c.unet(x_in, t_in, encoder_hidden_states=emb, down_block_additional_residuals=down,
                     mid_block_additional_residual=mid, added_cond_kwargs=extra, return_dict=False)[0]
        if n == 2:
            u, p = out.chunk(2)
            return u + self.cfg.guidance_scale * (p - u)
        return out

    # --- the loop -------------------------------------------------------------------------------
    @torch.no_grad()
    def _loop(self, x: torch.Tensor, timesteps: list[int], conds: list[torch.Tensor], plan: LoopPlan,
              start: int = 0) -> tuple[torch.Tensor, dict]:
        """The scheduler's steps from ``x`` (the input of step ``start``, in the scheduler's sample space)
        over ``timesteps[start:]``, doing what ``plan`` says beside denoising. Returns the final latent
        and the trace (constraint name -> steps)."""
        trace: dict = {"shape": [], "adain": [], "pixel": [], "cross": [], "control": []}
        emb = plan.emb if plan.emb is not None else self.embeddings()
        traj = plan.traj or self.traj
        windows = self.windows if traj is self.traj else self.windows_for(traj)
        run = schedulers.Pass(traj, self.cfg.seed, tuple(x.shape), plan.resume)
        try:
            for k in range(start, len(timesteps)):
                if k == plan.snapshot:
                    trace["snapshot"], trace["resume"] = x, run.save()
                x = self._step(x, k, timesteps[k], conds, emb, plan, trace, windows, run)
            if plan.keep is not None and start < len(timesteps):
                # after the last step the clean E(input) outside the matte, as diffusers' legacy masked
                # img2img (docs/method.md, "mattes"): no noise left there for the decoder to carry inside
                source, _, m = plan.keep
                x = m * x + (1.0 - m) * source
        finally:
            self.state.refs = []
            self.state.recording = None
        return x, trace

    def _step(self, x: torch.Tensor, k: int, t: int, conds: list[torch.Tensor], emb: text.TextConditioning,
              plan: LoopPlan, trace: dict, windows: dict[str, range], run: schedulers.Pass) -> torch.Tensor:
        """One step k (timestep t) with the constraints whose window (of this schedule) holds k: they edit
        the predicted x0 (and the step's result) in VP terms, the scheduler steps from the consistent state."""
        self.state.step = k
        # cross-frame attention (and its caches) only in its window; plain self-attention outside
        cross = k in windows["cross"]
        self.state.refs = plan.refs if cross else []
        self.state.recording = plan.record.attn if plan.record is not None and cross else None
        if cross and plan.refs:
            trace["cross"].append(k)
        control = k in windows["control"]
        if control:
            trace["control"].append(k)
        a_prev = run.traj.alpha_next(k)
        x_in = run.model_input(x, k)
        out = self._eps(x_in, t, conds, emb, control)
        eps, x0 = run.traj.split(out, x_in, k, self.prediction)
        edited = False
        if plan.shape is not None and k in windows["shape"]:
            anchor, flow, occ = plan.shape
            x0 = constraints.shape_fusion(x0, constraints.warp_latent(anchor.x0[k].to(x0.device), flow), occ)
            trace["shape"].append(k)
            edited = True
        if plan.adain_ref is not None and k in windows["adain"]:
            x0 = constraints.adain(x0, *(t.to(x0.device) for t in plan.adain_ref.stats[k]))
            trace["adain"].append(k)
            edited = True
        if plan.keep_anchor:
            if k in windows["shape"]:
                plan.record.x0[k] = x0.detach().clone()
            if k in windows["adain"]:
                plan.record.stats[k] = constraints.channel_stats(x0)
        x, direction = run.step(k, out, x_in, x0, eps, self.prediction, edited)
        if plan.pixel is not None and k in windows["pixel"]:
            target, weight, gen = plan.pixel
            z = torch.randn(target.shape, generator=gen).to(x.device, x.dtype)
            ref = a_prev ** 0.5 * target + (1.0 - a_prev) ** 0.5 * z
            x = constraints.pixel_fusion(x, direction, ref, weight, self.cfg.fusion_detail)
            trace["pixel"].append(k)
        if plan.keep is not None:
            source, z, m = plan.keep
            x = m * x + (1.0 - m) * (a_prev ** 0.5 * source + (1.0 - a_prev) ** 0.5 * z)
        return run.to_sample(x, k)

    def _conditions(self, conditions: list[np.ndarray]) -> list[torch.Tensor]:
        if len(conditions) != len(self.c.controlnets):
            raise ValueError(f"conditions: {len(conditions)} images for {len(self.c.controlnets)} ControlNets")
        return [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].to(self.c.device, self.c.dtype) / 255.0
                for im in conditions]

    def _check_frame(self, frame: np.ndarray) -> None:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame: expected uint8 H x W x 3, got {frame.dtype} {frame.shape}")
        f = encoder.vae_factor(self.c.vae)
        if frame.shape[0] % f or frame.shape[1] % f:
            raise ValueError(f"frame: {frame.shape[1]}x{frame.shape[0]} is not a multiple of {f} (the VAE factor); "
                             "pick a working size with --size")

    @torch.no_grad()
    def generate(self, frame: np.ndarray, conditions: list[np.ndarray],
                 prompts: tuple[str, str] | None = None) -> np.ndarray:
        """A frame generated from pure noise, no constraints: the colour-correction target. Only the
        conditions (edges) and the frame's size come from the input; none of its colours (SDEdit at
        strength 1 would still keep sqrt(a_T) ~ 0.07 of E(input))."""
        self._check_frame(frame)
        conds = self._conditions(conditions)
        traj = self.trajectory(1.0)
        f = encoder.vae_factor(self.c.vae)
        channels = self.c.unet.config.in_channels
        z = self.noise((1, channels, frame.shape[0] // f, frame.shape[1] // f))
        x = z * traj.fresh().init_noise_sigma
        x, _ = self._loop(x, traj.timesteps, conds, LoopPlan(emb=self.embeddings(prompts, frame.shape[:2]), traj=traj))
        return encoder.to_image(encoder.decode(self.c.vae, x))

    @torch.no_grad()
    def invert(self, frame: np.ndarray, conditions: list[np.ndarray], source_prompt: str | None = None,
               refine: int | None = None) -> torch.Tensor:
        """DDIM inversion of E(frame) to the first timestep run: the latent x_T that this sampler's DDIM
        steps (eta 0, no guidance, ``source_prompt``, the same ControlNet conditions and window) map back
        to E(frame). Each step k inverts x_{t_k} -> x_{t_{k-1}}; ``refine`` fixed-point iterations
        evaluate the noise at the inverted latent itself instead of at the cleaner one (exact inversion
        when they converge). Plain self-attention (no references)."""
        self._check_frame(frame)
        c, cfg = self.c, self.cfg
        refine = cfg.inversion_refine if refine is None else refine
        conds = self._conditions(conditions)
        source = cfg.source_prompt if source_prompt is None else source_prompt
        emb = text.encode(c, [source], frame.shape[:2])
        x = encoder.encode(c.vae, encoder.to_tensor(frame, c.device, c.dtype))
        self.state.refs, self.state.recording = [], None
        if self.image_embeds is not None:  # the reference describes the target, not the input: scale 0
            c.ip_pipeline.set_ip_adapter_scale(0.0)
        try:
            return self._invert_steps(x, conds, emb, refine)
        finally:
            if self.image_embeds is not None:
                c.ip_pipeline.set_ip_adapter_scale(cfg.reference_scale)

    def _invert_steps(self, x: torch.Tensor, conds: list[torch.Tensor], emb: text.TextConditioning,
                      refine: int) -> torch.Tensor:
        """DDIM's ODE run backwards over the trajectory's noise levels (VP latents, any scheduler)."""
        for k in reversed(range(self.n_steps)):
            t = self.timesteps[k]
            self.state.step = k
            a_t, a_prev = self.traj.alpha(k), self.traj.alpha_next(k)
            control = k in self.windows["control"]
            x_prev, x_t = x, x
            for _ in range(refine + 1):
                eps, _ = self.traj.split(self._eps(x_t, t, conds, emb, control), x_t, k, self.prediction)
                x0 = (x_prev - (1.0 - a_prev) ** 0.5 * eps) / a_prev ** 0.5
                x_t = a_t ** 0.5 * x0 + (1.0 - a_t) ** 0.5 * eps
            x = x_t
        return x

    def initial_latent(self, frame: np.ndarray, latent: torch.Tensor) -> torch.Tensor:
        """SDEdit start: E(I) noised to the first timestep run with the shared noise z (in the
        scheduler's sample space)."""
        z = self.noise(tuple(latent.shape))
        return self.traj.add_noise(latent, z)

    @torch.no_grad()
    def render(self, frame: np.ndarray, conditions: list[np.ndarray], anchor: FrameMemory | None = None,
               prev: FrameMemory | None = None, geometry: Geometry | None = None,
               keep_memory: bool = True, prompts: tuple[str, str] | None = None,
               init_latent: torch.Tensor | None = None, origin: FrameMemory | None = None,
               matte: np.ndarray | None = None) -> KeyResult:
        """Render one key frame. The anchor itself: ``anchor=None``. Later keys: the anchor's and the
        previous key's memories and the ``geometry`` (flows / occlusions) to them. ``prompts``:
        (positive, negative) for this key (default: the config's prompts). ``init_latent``: the start
        latent x_T (VP, e.g. from :meth:`invert`; default: SDEdit). ``origin``: the shot's first key when
        ``anchor`` is a newer segment anchor: attention then reads [origin; anchor; previous], AdaIN
        follows the origin, and the fusions use the (nearer) anchor. ``matte``: uint8 H x W, 255 =
        restyle; outside it the latent follows the input's (masked SDEdit)."""
        self._check_frame(frame)
        if self.attn_layers:
            attention.verify_installed(self.c.unet, self.attn_layers)
        c, cfg = self.c, self.cfg
        dev, dt = c.device, c.dtype
        conds = self._conditions(conditions)
        emb = self.embeddings(prompts, frame.shape[:2])
        image = encoder.to_tensor(frame, dev, dt)
        latent = encoder.encode(c.vae, image)
        x_T = (init_latent.to(dev, dt) * self.traj.scale(0) if init_latent is not None
               else self.initial_latent(frame, latent))
        if tuple(x_T.shape) != tuple(latent.shape):
            raise ValueError(f"init_latent: shape {tuple(x_T.shape)} does not match the frame's latent {tuple(latent.shape)}")
        keep = None
        if matte is not None:
            if matte.shape != frame.shape[:2]:
                raise ValueError(f"matte: expected shape {frame.shape[:2]}, got {matte.shape}")
            keep = (latent, self.noise(tuple(latent.shape)).to(dev, dt),
                    constraints.matte_to_latent(matte, encoder.vae_factor(c.vae), dev, dt))
        is_anchor = anchor is None
        memory = FrameMemory(image=np.zeros(0, np.uint8)) if keep_memory else None
        if is_anchor:
            x, trace = self._loop(x_T, self.timesteps, conds,
                                  LoopPlan(emb=emb, record=memory, keep_anchor=keep_memory, keep=keep))
            out = encoder.to_image(encoder.decode(c.vae, x))
            if memory is not None:
                memory.image = out
            return KeyResult(out, memory, trace, latent=x)

        if geometry is None:
            raise ValueError("geometry: flows to the anchor and previous key are needed for a non-anchor key frame")
        prev = prev if prev is not None else anchor
        h, w = frame.shape[:2]
        factor = encoder.vae_factor(c.vae)
        for name, arr, shp in (("flow_anchor", geometry.flow_anchor, (h, w, 2)), ("occ_anchor", geometry.occ_anchor, (h, w)),
                               ("flow_prev", geometry.flow_prev, (h, w, 2)), ("occ_prev", geometry.occ_prev, (h, w))):
            if tuple(arr.shape) != shp:
                raise ValueError(f"geometry.{name}: expected shape {shp}, got {tuple(arr.shape)}")
        carried = origin is not None and origin is not anchor
        refs = ([origin.attn] if carried else []) + [anchor.attn, prev.attn] if self.attn_layers else []
        shape = None
        if self.windows["shape"]:
            shape = (anchor, constraints.flow_to_latent(geometry.flow_anchor, factor, dev, dt),
                     constraints.occlusion_to_latent(geometry.occ_anchor, cfg.mask_dilate, True, factor, dev, dt))
        adain_ref = (origin if carried else anchor) if self.windows["adain"] else None

        plan = LoopPlan(emb=emb, refs=refs, record=memory, keep_anchor=keep_memory, shape=shape,
                        adain_ref=adain_ref, keep=keep)
        rough_img = None
        pixel = None
        x_start, start = x_T, 0
        if self.windows["pixel"]:
            # The fused pass equals the rough one until pixel fusion starts: run that prefix once (its
            # attention inputs are recorded here, later steps are overwritten by the fused pass).
            start = self.windows["pixel"].start
            x_rough, rough_trace = self._loop(x_T, self.timesteps, conds, dataclasses.replace(plan, snapshot=start))
            x_start = rough_trace["snapshot"]
            plan = dataclasses.replace(plan, resume=rough_trace["resume"])
            rough = encoder.decode(c.vae, x_rough).clamp(-1, 1)
            rough_img = encoder.to_image(rough)
            target_img = self.pixel_reference(rough, anchor.image, prev.image, geometry)
            target, _ = encoder.fidelity_encode(c.vae, target_img, cfg.fidelity_lambda, cfg.fidelity_threshold)
            weight = self.inpainting_weight(geometry, factor)
            pixel = (target, weight, torch.Generator("cpu").manual_seed(cfg.seed + 1))
        # every key keeps its x0 / statistics too: any key can become a segment anchor (re-anchoring)
        x, trace = self._loop(x_start, self.timesteps, conds, dataclasses.replace(plan, pixel=pixel), start)
        if start:
            for name in ("shape", "adain", "cross", "control"):
                trace[name] = [k for k in rough_trace[name] if k < start] + trace[name]
        out = encoder.to_image(encoder.decode(c.vae, x))
        if memory is not None:
            memory.image = out
        return KeyResult(out, memory, trace, rough_img, latent=x)

    def inpainting_weight(self, geometry: Geometry, factor: int) -> torch.Tensor:
        """Latent-size weight of the pixel reference: 0 where both references are occluded (ControlNet
        inpaints there). The occlusion mask is always dilated and blurred at pixel level;
        ``smooth_boundary`` only decides whether the weight is feathered at the boundary."""
        cfg = self.cfg
        both = np.logical_and(geometry.occ_anchor > 0, geometry.occ_prev > 0)
        occ_both = constraints.occlusion_to_latent(both, cfg.mask_dilate, True, factor, self.c.device, self.c.dtype)
        return constraints.fusion_weight(occ_both, cfg.fusion_strength, cfg.smooth_boundary)

    def pixel_reference(self, rough: torch.Tensor, anchor_img: np.ndarray, prev_img: np.ndarray,
                        geometry: Geometry) -> torch.Tensor:
        """Ĩ = M0 (Mp rough + (1 - Mp) w(I'_prev)) + (1 - M0) w(I'_anchor), soft masks, in [-1, 1]."""
        dev, dt = rough.device, rough.dtype

        def warped(img: np.ndarray, flow: np.ndarray) -> torch.Tensor:
            f = torch.as_tensor(flow, dtype=torch.float32, device=dev).permute(2, 0, 1)[None]
            return constraints.warp_latent(encoder.to_tensor(img, dev, torch.float32), f, mode="bilinear").to(dt)

        def soft(occ: np.ndarray) -> torch.Tensor:
            m = torch.as_tensor(np.asarray(occ) > 0, dtype=torch.float32, device=dev)[None, None]
            return constraints.soften_mask(m, self.cfg.mask_dilate).to(dt)

        m0, mp = soft(geometry.occ_anchor), soft(geometry.occ_prev)
        inner = mp * rough + (1.0 - mp) * warped(prev_img, geometry.flow_prev)
        return m0 * inner + (1.0 - m0) * warped(anchor_img, geometry.flow_anchor)

    def release(self) -> None:
        """Drop prompt embeddings' references to cached state (memories are owned by the caller)."""
        self.state.reset()
