"""RAFT optical flow (Teed & Deng, "RAFT: Recurrent All-Pairs Field Transforms for Optical Flow",
ECCV 2020) as a flow backend that loads a user-supplied weights file.

The network follows the published architecture with torchvision's parameter layout, so the weight
files torchvision publishes (``raft_large_*.pth``, ``raft_small_*.pth``; converted to
``.safetensors``, or as ``.pth`` with ``allow_pickle``) load unchanged. It is written here rather
than imported from torchvision because torchvision's wheels are tied to one torch build (a CPU torch
cannot import the CUDA torchvision wheel), and the network is small.

  features  = F(I1), F(I2)                    shared encoder, 1/8 resolution (instance norm)
  context   = C(I1) -> hidden state (tanh), context (relu)
  corr      = <F(I1)(x), F(I2)(y)> / sqrt(D)  all pairs, pooled into a 4-level pyramid
  repeat N: look up corr around x + flow in a (2r+1)^2 window per level, update the hidden state
            with a convolutional GRU, add the predicted flow increment
  upsample  x8 by a learned convex combination of 3x3 neighbours (large) or bilinearly (small)

Flow convention (rerender.flow): ``flow(a, b)`` is H x W x 2 (dx, dy) with a(x) ~ b(x + flow(x)).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .files import file_digest

__all__ = ["RAFT", "RaftFlow", "load_raft", "register_raft"]

# The two published configurations (torchvision's raft_large / raft_small).
VARIANTS = {
    "large": dict(block="residual", feature=(64, 64, 96, 128, 256), context=(64, 64, 96, 128, 256),
                  context_norm="batch", radius=4, corr_layers=(256, 192), flow_layers=(128, 64), motion_out=128,
                  hidden=128, gru=(((1, 5), (0, 2)), ((5, 1), (2, 0))), head=256, mask=True),
    "small": dict(block="bottleneck", feature=(32, 32, 64, 96, 128), context=(32, 32, 64, 96, 160),
                  context_norm=None, radius=3, corr_layers=(96,), flow_layers=(64, 32), motion_out=82,
                  hidden=96, gru=((3, 1),), head=128, mask=False),
}
LEVELS = 4
MIN_SIDE = 8 * 2 * 2 ** (LEVELS - 1)  # the coarsest correlation level needs 2 cells: 128 px


def _conv(cin: int, cout: int, k, stride: int = 1, norm: str | None = None, relu: bool = True) -> nn.Sequential:
    """conv [+ norm] [+ relu] as a Sequential (conv = index 0, norm = index 1: the weight files' keys)."""
    pad = (k - 1) // 2 if isinstance(k, int) else tuple((x - 1) // 2 for x in k)
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=True)]
    if norm == "instance":
        layers.append(nn.InstanceNorm2d(cout))
    elif norm == "batch":
        layers.append(nn.BatchNorm2d(cout))
    elif norm is not None:
        raise ValueError(f"norm: {norm!r}")
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str | None, stride: int):
        super().__init__()
        self.convnormrelu1 = _conv(cin, cout, 3, stride, norm)
        self.convnormrelu2 = _conv(cout, cout, 3, 1, norm)
        self.downsample = nn.Identity() if stride == 1 else _conv(cin, cout, 1, stride, norm, relu=False)

    def forward(self, x):
        return F.relu(self.downsample(x) + self.convnormrelu2(self.convnormrelu1(x)))


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str | None, stride: int):
        super().__init__()
        mid = cout // 4
        self.convnormrelu1 = _conv(cin, mid, 1, 1, norm)
        self.convnormrelu2 = _conv(mid, mid, 3, stride, norm)
        self.convnormrelu3 = _conv(mid, cout, 1, 1, norm)
        self.downsample = nn.Identity() if stride == 1 else _conv(cin, cout, 1, stride, norm, relu=False)

    def forward(self, x):
        return F.relu(self.downsample(x) + self.convnormrelu3(self.convnormrelu2(self.convnormrelu1(x))))


class _Encoder(nn.Module):
    """7x7 stride-2 stem, three stages of two blocks (strides 1, 2, 2), 1x1 projection: 1/8 resolution."""

    def __init__(self, widths: tuple, block: str, norm: str | None):
        super().__init__()
        make = _Residual if block == "residual" else _Bottleneck
        self.convnormrelu = _conv(3, widths[0], 7, 2, norm)
        stages = []
        for cin, cout, stride in zip(widths[:3], widths[1:4], (1, 2, 2)):
            stages.append(nn.Sequential(make(cin, cout, norm, stride), make(cout, cout, norm, 1)))
        self.layer1, self.layer2, self.layer3 = stages
        self.conv = nn.Conv2d(widths[3], widths[4], 1)

    def forward(self, x):
        return self.conv(self.layer3(self.layer2(self.layer1(self.convnormrelu(x)))))


class _ConvGRU(nn.Module):
    def __init__(self, inp: int, hidden: int, k, pad):
        super().__init__()
        self.convz = nn.Conv2d(hidden + inp, hidden, k, padding=pad)
        self.convr = nn.Conv2d(hidden + inp, hidden, k, padding=pad)
        self.convq = nn.Conv2d(hidden + inp, hidden, k, padding=pad)

    def forward(self, h, x):
        hx = torch.cat([h, x], 1)
        z, r = torch.sigmoid(self.convz(hx)), torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], 1)))
        return (1 - z) * h + z * q


class _Motion(nn.Module):
    """Encodes the correlation features and the current flow; the flow itself is appended."""

    def __init__(self, corr_in: int, corr_layers: tuple, flow_layers: tuple, out: int):
        super().__init__()
        self.convcorr1 = _conv(corr_in, corr_layers[0], 1)
        self.convcorr2 = _conv(corr_layers[0], corr_layers[1], 3) if len(corr_layers) == 2 else nn.Identity()
        self.convflow1 = _conv(2, flow_layers[0], 7)
        self.convflow2 = _conv(flow_layers[0], flow_layers[1], 3)
        self.conv = _conv(corr_layers[-1] + flow_layers[-1], out - 2, 3)

    def forward(self, flow, corr):
        c = self.convcorr2(self.convcorr1(corr))
        f = self.convflow2(self.convflow1(flow))
        return torch.cat([self.conv(torch.cat([c, f], 1)), flow], 1)


class _Recurrent(nn.Module):
    def __init__(self, inp: int, hidden: int, grus: tuple):
        super().__init__()
        (k1, p1), *rest = grus
        self.convgru1 = _ConvGRU(inp, hidden, k1, p1)
        self.convgru2 = _ConvGRU(inp, hidden, rest[0][0], rest[0][1]) if rest else None

    def forward(self, h, x):
        h = self.convgru1(h, x)
        return self.convgru2(h, x) if self.convgru2 is not None else h


class _FlowHead(nn.Module):
    def __init__(self, cin: int, hidden: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 2, 3, padding=1)

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(x)))


class _Update(nn.Module):
    def __init__(self, v: dict, corr_in: int, context: int):
        super().__init__()
        self.motion_encoder = _Motion(corr_in, v["corr_layers"], v["flow_layers"], v["motion_out"])
        self.recurrent_block = _Recurrent(v["motion_out"] + context, v["hidden"], v["gru"])
        self.flow_head = _FlowHead(v["hidden"], v["head"])

    def forward(self, h, context, corr, flow):
        h = self.recurrent_block(h, torch.cat([context, self.motion_encoder(flow, corr)], 1))
        return h, self.flow_head(h)


class _MaskPredictor(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.convrelu = _conv(cin, 256, 3)
        self.conv = nn.Conv2d(256, 8 * 8 * 9, 1)

    def forward(self, x):
        return 0.25 * self.conv(self.convrelu(x))  # the 0.25 scale the published weights were trained with


class RAFT(nn.Module):
    """RAFT, ``variant`` "large" or "small"; ``forward(image1, image2, iters)`` takes B x 3 x H x W in
    [-1, 1] (H, W multiples of 8, at least 128) and returns the flow B x 2 x H x W in pixels."""

    def __init__(self, variant: str = "large"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"RAFT variant: {variant!r} is not one of {', '.join(VARIANTS)}")
        v = VARIANTS[variant]
        self.variant = variant
        self.radius = v["radius"]
        self.hidden = v["hidden"]
        self.feature_encoder = _Encoder(v["feature"], v["block"], "instance")
        self.context_encoder = _Encoder(v["context"], v["block"], v["context_norm"])
        corr_in = LEVELS * (2 * self.radius + 1) ** 2
        self.update_block = _Update(v, corr_in, v["context"][-1] - v["hidden"])
        self.mask_predictor = _MaskPredictor(v["hidden"]) if v["mask"] else None

    def _pyramid(self, f1: torch.Tensor, f2: torch.Tensor) -> list[torch.Tensor]:
        b, c, h, w = f1.shape
        corr = torch.matmul(f1.view(b, c, h * w).transpose(1, 2), f2.view(b, c, h * w)) / c ** 0.5
        levels = [corr.reshape(b * h * w, 1, h, w)]
        for _ in range(LEVELS - 1):
            levels.append(F.avg_pool2d(levels[-1], 2, 2))
        return levels

    def _lookup(self, pyramid: list[torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        """Correlations in a (2r+1)^2 window around ``coords`` (B x 2 x h x w, x then y) at every level.
        Channel order: level, then x offset, then y offset (the order the weights expect)."""
        b, _, h, w = coords.shape
        r = self.radius
        d = torch.arange(-r, r + 1, device=coords.device, dtype=coords.dtype)
        dx, dy = torch.meshgrid(d, d, indexing="ij")
        delta = torch.stack([dx, dy], -1).view(1, 2 * r + 1, 2 * r + 1, 2)
        centre = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
        out = []
        for level, vol in enumerate(pyramid):
            grid = centre / 2 ** level + delta
            lh, lw = vol.shape[-2:]
            norm = torch.stack([2 * grid[..., 0] / max(lw - 1, 1) - 1, 2 * grid[..., 1] / max(lh - 1, 1) - 1], -1)
            out.append(F.grid_sample(vol, norm, mode="bilinear", align_corners=True).view(b, h, w, -1))
        return torch.cat(out, -1).permute(0, 3, 1, 2)

    @staticmethod
    def _upsample(flow: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, _, h, w = flow.shape
        if mask is None:
            return 8 * F.interpolate(flow, size=(8 * h, 8 * w), mode="bilinear", align_corners=True)
        weights = torch.softmax(mask.view(b, 1, 9, 8, 8, h, w), dim=2)  # convex combination of 3x3 neighbours
        patches = F.unfold(8 * flow, 3, padding=1).view(b, 2, 9, 1, 1, h, w)
        up = (weights * patches).sum(2)  # b, 2, 8, 8, h, w
        return up.permute(0, 1, 4, 2, 5, 3).reshape(b, 2, 8 * h, 8 * w)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, iters: int = 12) -> torch.Tensor:
        h, w = image1.shape[-2:]
        if image2.shape != image1.shape or h % 8 or w % 8 or min(h, w) < MIN_SIDE:
            raise ValueError(f"RAFT: need two images of one size, multiples of 8 and >= {MIN_SIDE} px, "
                             f"got {tuple(image1.shape)} and {tuple(image2.shape)}")
        f1, f2 = self.feature_encoder(torch.cat([image1, image2], 0)).chunk(2, 0)
        pyramid = self._pyramid(f1, f2)
        ctx = self.context_encoder(image1)
        hidden, context = torch.split(ctx, [self.hidden, ctx.shape[1] - self.hidden], 1)
        hidden, context = torch.tanh(hidden), F.relu(context)
        b, _, hh, ww = f1.shape
        ys, xs = torch.meshgrid(torch.arange(hh, device=f1.device), torch.arange(ww, device=f1.device), indexing="ij")
        coords0 = torch.stack([xs, ys], 0).to(f1.dtype)[None].expand(b, -1, -1, -1)
        coords1 = coords0.clone()
        for _ in range(iters):
            hidden, delta = self.update_block(hidden, context, self._lookup(pyramid, coords1), coords1 - coords0)
            coords1 = coords1 + delta
        mask = self.mask_predictor(hidden) if self.mask_predictor is not None else None
        return self._upsample(coords1 - coords0, mask)


def _read_state_dict(path: Path, allow_pickle: bool) -> dict:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if suffix in (".pth", ".pt", ".bin", ".ckpt"):
        if not allow_pickle:
            raise ValueError(f"raft_weights: {path} is a pickle file, which can execute code when loaded; convert it "
                             "to .safetensors or pass --allow-pickle (allow_pickle: true) if you trust it")
        return torch.load(str(path), map_location="cpu", weights_only=True)
    raise ValueError(f"raft_weights: {path} is not a .safetensors (or, with --allow-pickle, .pth) file")


def load_raft(path: str | Path, *, allow_pickle: bool = False) -> RAFT:
    """RAFT with the weights in ``path``; the variant (large / small) is read from the file's keys."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"raft_weights: file {path} does not exist")
    sd = _read_state_dict(path, allow_pickle)
    variant = "large" if any(k.startswith("mask_predictor.") for k in sd) else "small"
    net = RAFT(variant)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"raft_weights: {path} does not hold RAFT-{variant} weights in torchvision's layout "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return net.eval().requires_grad_(False)


class RaftFlow:
    """Flow backend (``rerender.flow.FlowBackend``) running RAFT with the user's weights.

    ``name`` carries a digest of the weights file, so flow caches of different weights never mix.
    Frames are padded (edge-replicated) to multiples of 8 and at least 128 px, and the flow cropped."""

    def __init__(self, weights: str | Path, *, allow_pickle: bool = False, device: str = "auto", iters: int = 12):
        if iters < 1:
            raise ValueError(f"raft iters: must be >= 1, got {iters}")
        path = Path(weights).expanduser()
        self.net = load_raft(path, allow_pickle=allow_pickle)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.net.to(self.device)
        self.iters = iters
        self.name = f"raft_{file_digest([path])[:8]}_{iters}"  # flows of other weights live elsewhere

    @torch.no_grad()
    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        from .flow import check_flow_pair

        check_flow_pair(a, b)
        h, w = a.shape[:2]
        ph, pw = max(MIN_SIDE, -(-h // 8) * 8), max(MIN_SIDE, -(-w // 8) * 8)

        def prep(img: np.ndarray) -> torch.Tensor:
            rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else (
                np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img)
            t = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1)[None].float()
            t = F.pad(t, (0, pw - w, 0, ph - h), mode="replicate")
            return t / 127.5 - 1.0

        flow = self.net(prep(a), prep(b), self.iters)[0, :, :h, :w]
        return np.ascontiguousarray(flow.permute(1, 2, 0).cpu().numpy(), dtype=np.float32)


def register_raft(weights: str | Path, *, allow_pickle: bool = False, device: str = "auto", iters: int = 12,
                  name: str = "raft") -> None:
    """Make ``rerender.flow.get_flow_backend(name)`` (and ``FlowCache(..., name)``) use RAFT with these weights."""
    from .flow import register_flow_backend

    backend = RaftFlow(weights, allow_pickle=allow_pickle, device=device, iters=iters)
    register_flow_backend(name, lambda: backend, replace=True)
