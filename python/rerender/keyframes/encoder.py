"""VAE helpers and the fidelity-oriented image encoder E*.

Plain E(I) loses detail and shifts colour each time an image passes through the autoencoder, and
the loss is about the same every pass, so E* adds it back once:
    x_r = E(I), x_rr = E(D(x_r)),  E'(I) = x_r + lambda (x_r - x_rr),
and masks the compensation out where it hurts (|D(E'(I)) - I| above a threshold):
    E*(I) = x_r + M_E lambda (x_r - x_rr).
Images are torch ``B x 3 x H x W`` in [-1, 1]; latents are scaled by the VAE's scaling factor.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(image: np.ndarray, device=None, dtype=torch.float32) -> torch.Tensor:
    """uint8 RGB H x W x 3 -> 1 x 3 x H x W in [-1, 1]."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected uint8 H x W x 3, got {image.dtype} {image.shape}")
    t = torch.from_numpy(np.ascontiguousarray(image)).to(device=device, dtype=torch.float32)
    return (t.permute(2, 0, 1)[None] / 127.5 - 1.0).to(dtype)


def to_image(t: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W in [-1, 1] -> uint8 RGB H x W x 3 (rounded, clipped)."""
    x = ((t[0].float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()


def vae_factor(vae) -> int:
    """Pixels per latent cell (8 for Stable Diffusion)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def encode(vae, image: torch.Tensor) -> torch.Tensor:
    """E(I): the posterior mean (deterministic), scaled, in the image's dtype (an upcast fp32 VAE
    under an fp16 run hands fp16 latents back)."""
    dist = vae.encode(image.to(vae.dtype)).latent_dist
    return (dist.mean * vae.config.scaling_factor).to(image.dtype)


def decode(vae, latent: torch.Tensor) -> torch.Tensor:
    """D(x) in [-1, 1] (not clipped), in the latent's dtype."""
    return vae.decode(latent.to(vae.dtype) / vae.config.scaling_factor).sample.to(latent.dtype)


def compensation_mask(error: torch.Tensor, threshold: float, factor: int) -> torch.Tensor:
    """M_E at latent size: 0 in every cell (and its 8 neighbours) holding a pixel whose mean absolute
    error over channels exceeds ``threshold``; 1 elsewhere. ``error``: B x 3 x H x W absolute error."""
    bad = (error.mean(dim=1, keepdim=True) > threshold).float()
    bad = F.max_pool2d(bad, factor)
    bad = F.max_pool2d(bad, 3, 1, 1)  # dilate: the decoder spreads a latent cell over its neighbours
    return 1.0 - bad


@torch.no_grad()
def fidelity_encode(vae, image: torch.Tensor, lam: float = 1.0, threshold: float = 0.25,
                    mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """E*(I) and the mask M_E used. ``mask`` forces M_E (e.g. all ones for the unmasked E')."""
    x_r = encode(vae, image)
    x_rr = encode(vae, decode(vae, x_r))
    delta = lam * (x_r - x_rr)
    if mask is None:
        err = (decode(vae, x_r + delta).float() - image.float()).abs()
        mask = compensation_mask(err, threshold, vae_factor(vae)).to(x_r.dtype)
    return x_r + mask * delta, mask
