"""The latent-space constraints of the key-frame sampler and their step windows.

All tensors are torch, latents ``B x C x h x w``; masks are 1 where the flow is *unreliable*
(occluded), matching ``rerender.occlusion``. Flows are pixels, ``H x W x 2`` (dx, dy) on the grid
of the current frame, as in the shared conventions.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def window_steps(n_steps: int, window: tuple[float, float]) -> range:
    """Indices ``k`` (0-based, of the ``n_steps`` steps actually run) with ``start <= k / n < end``:
    the trajectory rule of ``schedulers.window_steps`` on DDIM's uniform steps (a window that holds no
    step start on a very short run takes the step its start falls in).

    ``end == 1`` includes the last step. Windows never count steps that SDEdit skipped.
    """
    from .schedulers import window_steps as trajectory_window

    if n_steps < 1:
        raise ValueError(f"n_steps: must be >= 1, got {n_steps}")
    start, end = window
    if not 0.0 <= start <= end <= 1.0:
        raise ValueError(f"window: need 0 <= start <= end <= 1, got {window}")
    return trajectory_window([k / n_steps for k in range(n_steps)], window)


def occlusion_to_latent(mask: np.ndarray | torch.Tensor, dilate: int = 9, smooth: bool = True,
                        factor: int = 8, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel occlusion mask (H x W, 1 = occluded) -> 1 x 1 x H/f x W/f, conservative.

    Dilated (``dilate`` px max filter) and blurred so that uncertain boundaries count as occluded,
    then max-pooled: a latent cell is unreliable if any of its pixels is.
    """
    m = torch.as_tensor(np.asarray(mask), dtype=torch.float32, device=device)
    if m.ndim != 2:
        raise ValueError(f"occlusion mask: expected H x W, got shape {tuple(m.shape)}")
    h, w = m.shape
    if h % factor or w % factor:
        raise ValueError(f"occlusion mask: {h}x{w} is not a multiple of {factor}")
    m = (m > 0).float()[None, None]
    m = soften_mask(m, dilate) if smooth else F.max_pool2d(m, dilate, 1, dilate // 2)
    return F.max_pool2d(m, factor).to(dtype)


def matte_to_latent(matte: np.ndarray, factor: int = 8, device=None, dtype=torch.float32) -> torch.Tensor:
    """A matte (uint8 H x W, > 0 = restyle) -> 1 x 1 x H/f x W/f, 1 where any pixel of the latent cell
    is restyled: the cells along the edge are generated, and the pixel composite over the plate
    draws the exact edge."""
    m = torch.as_tensor(np.asarray(matte) > 0, dtype=torch.float32, device=device)
    h, w = m.shape
    if h % factor or w % factor:
        raise ValueError(f"matte: {h}x{w} is not a multiple of {factor}")
    return F.max_pool2d(m[None, None], factor).to(dtype)


def soften_mask(m: torch.Tensor, dilate: int) -> torch.Tensor:
    """Dilate a B x 1 x H x W mask and feather its edge outward (values stay 1 inside the original)."""
    grown = F.max_pool2d(m, dilate, 1, dilate // 2)
    k = torch.ones(1, 1, dilate, dilate, dtype=m.dtype, device=m.device) / (dilate * dilate)
    blurred = F.conv2d(F.pad(grown, [dilate // 2] * 4, mode="replicate"), k)
    return torch.clamp(blurred + m, 0.0, 1.0)


def flow_to_latent(flow: np.ndarray | torch.Tensor, factor: int = 8, device=None,
                   dtype=torch.float32) -> torch.Tensor:
    """H x W x 2 pixel flow -> 1 x 2 x H/f x W/f flow in latent cells (area-averaged, divided by f)."""
    f = torch.as_tensor(np.asarray(flow), dtype=torch.float32, device=device)
    if f.ndim != 3 or f.shape[2] != 2:
        raise ValueError(f"flow: expected H x W x 2, got shape {tuple(f.shape)}")
    f = f.permute(2, 0, 1)[None]
    return (F.avg_pool2d(f, factor) / factor).to(dtype)


def warp_latent(x: torch.Tensor, flow: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Backward warp: out(p) = x(p + flow(p)); ``flow`` 1 x 2 x h x w in cells; border clamp.

    Nearest sampling by default: interpolating latents blurs them and lowers their variance.
    """
    _, _, h, w = x.shape
    if flow.shape[-2:] != (h, w):
        raise ValueError(f"warp_latent: flow {tuple(flow.shape)} does not match latent {tuple(x.shape)}")
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=flow.dtype),
                            torch.arange(w, device=x.device, dtype=flow.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).expand(x.shape[0], -1, -1, -1).to(x.dtype)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=True)


def shape_fusion(x0: torch.Tensor, anchor_x0_warped: torch.Tensor, occluded: torch.Tensor) -> torch.Tensor:
    """x̂0 <- M x̂0 + (1 - M) w(x̂0_anchor): keep the anchor's predicted latent where the flow is reliable."""
    return occluded * x0 + (1.0 - occluded) * anchor_x0_warped


def channel_stats(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and standard deviation (B x C x 1 x 1 each, float32: fp16 sums
    over a 64x64 latent lose precision)."""
    x = x.float()
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.var(dim=(2, 3), keepdim=True, unbiased=False).add(eps).sqrt()
    return mean, std


def adain(x: torch.Tensor, ref_mean: torch.Tensor, ref_std: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Give ``x`` the channel-wise mean and standard deviation ``ref_mean``/``ref_std``."""
    mean, std = channel_stats(x, eps)
    return ((x.float() - mean) / std * ref_std.float() + ref_mean.float()).to(x.dtype)


def pixel_fusion(x_prev: torch.Tensor, direction: torch.Tensor, ref_noised: torch.Tensor,
                 weight: torch.Tensor, detail: float) -> torch.Tensor:
    """Blend the DDIM sample x_{t-1} towards the noised pixel reference where ``weight`` > 0.

    ``x_prev = sqrt(a) x̂0 + direction`` (the deterministic DDIM split). The clean part is blended
    linearly; the noise direction is rescaled so the blend keeps (``detail`` = 1) the variance of
    independent noise, sqrt(1 - w²), never less than the plain linear share (1 - w); ``detail`` < 1
    injects slightly less noise, which keeps more of the reference's texture.
    ``weight`` = 0 leaves ``x_prev`` unchanged (e.g. where both references are occluded).
    """
    w = weight
    rescale = torch.maximum(1.0 - w, torch.sqrt(torch.clamp(1.0 - w * w, min=0.0)) * detail)
    # = w ref + (1 - w)(x_prev - direction) + rescale direction, written as a correction of x_prev
    # so that w = 0 returns x_prev bit for bit
    return x_prev + w * (ref_noised - (x_prev - direction)) + (rescale - 1.0) * direction


def fusion_weight(both_occluded: torch.Tensor, strength: float, smooth: bool, dilate: int = 3) -> torch.Tensor:
    """Latent-size weight of the warped reference: ``strength`` where at least one reference is reliable,
    0 where both are occluded (ControlNet inpaints there); feathered at the boundary if ``smooth``."""
    reliable = 1.0 - both_occluded
    if smooth:
        # shrink the reliable region and feather it, so the inpainted region grows a soft margin
        reliable = 1.0 - soften_mask(1.0 - reliable, dilate)
    return strength * reliable


def _match_quantiles(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Map float ``values`` so their distribution matches ``reference``'s (rank -> reference quantile;
    equal values stay equal)."""
    uniq, inverse, counts = np.unique(values.ravel(), return_inverse=True, return_counts=True)
    q_src = (np.cumsum(counts) - 0.5 * counts) / values.size  # mid-rank quantile of each distinct value
    ref = np.sort(reference.ravel())
    q_ref = (np.arange(ref.size) + 0.5) / ref.size
    return np.interp(q_src, q_ref, ref)[inverse].reshape(values.shape).astype(values.dtype)


def match_colour(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Colour correction: give uint8 RGB ``image`` the colours of ``reference`` but keep its lightness.

    Works in CIE Lab (float, D65): the a and b (chroma) histograms are matched to the reference's,
    L is the image's own, so the brightness and contrast that drive SDEdit's structure are unchanged.
    Chroma that leaves the sRGB gamut is clipped on the way back (the only place L can move)."""
    for name, im in (("image", image), ("reference", reference)):
        if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
            raise ValueError(f"match_colour: {name} must be uint8 H x W x 3, got {im.dtype} {im.shape}")
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    ref = cv2.cvtColor(reference.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    for c in (1, 2):
        lab[..., c] = _match_quantiles(lab[..., c], ref[..., c])
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def lightness(image: np.ndarray) -> np.ndarray:
    """CIE L* (0..100) of a uint8 RGB image, float32."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)[..., 0]
