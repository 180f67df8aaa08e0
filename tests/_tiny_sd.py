"""Helpers for the key-frame stage tests (the tiny random model itself is the ``tiny_model`` /
``comps`` fixtures of conftest.py): configs, frames, conditions, flows, tiny extra models."""
from __future__ import annotations

import numpy as np

H = W = 32


def make_cfg(tiny_model, **kw):
    from rerender.keyframes.config import KeyframeConfig

    model, cn = tiny_model
    base = dict(model=str(model), controlnet=[str(cn)], control=["canny"], prompt="a cat", steps=8)
    base.update(kw)
    return KeyframeConfig(**base)


def frame(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    """A flat colour with a rectangle of another colour (clear canny edges)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rng.integers(40, 200, 3, dtype=np.uint8)
    img[h // 4:3 * h // 4, 5 * w // 16:11 * w // 16] = rng.integers(0, 255, 3, dtype=np.uint8)
    return img


def conds(img: np.ndarray) -> list[np.ndarray]:
    from rerender.keyframes.controls import canny

    return [canny(img)]


def zero_flow(a: int, b: int) -> np.ndarray:
    return np.zeros((H, W, 2), np.float32)


def no_occlusion(f: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.zeros(f.shape[:2], np.uint8)


def save_tiny_depth_model(folder, seed: int = 0, safe: bool = True):
    """A random tiny Depth Anything (transformers) with its image processor, saved like a user's folder."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            image_size=56, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, patch_size=14, fusion_hidden_size=16,
                              neck_hidden_sizes=[8, 16, 32, 32], head_hidden_size=8)
    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(cfg).eval()
    with torch.no_grad():  # random heads end in a ReLU that is mostly off; shift it so the map varies
        model.head.conv3.bias.fill_(1.0)
    if safe:
        model.save_pretrained(folder)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        model.config.save_pretrained(folder)
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return model


def save_tiny_ip_adapter(folder, unet, seed: int = 0):
    """A random IP-Adapter for ``unet`` (the original file layout: ``image_proj.*`` and ``ip_adapter.N.to_k_ip/
    to_v_ip`` for the N-th cross-attention layer, N = 1, 3, 5, ...) as ``folder/ip-adapter.safetensors`` and a
    tiny CLIP image encoder as ``folder/image_encoder``; returns the adapter file."""
    from pathlib import Path

    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = Path(folder)
    torch.manual_seed(seed)
    enc = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                         num_attention_heads=4, image_size=32, patch_size=8,
                                                         projection_dim=32))
    enc.save_pretrained(folder / "image_encoder")
    cross = unet.config.cross_attention_dim
    tokens = 4
    sd = {"image_proj.proj.weight": torch.randn(cross * tokens, 32) * 0.2,
          "image_proj.proj.bias": torch.zeros(cross * tokens),
          "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        hidden = unet.get_submodule(name[: -len(".processor")]).to_k.out_features
        sd[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, cross) * 0.3
        sd[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, cross) * 0.3
        key += 2
    path = folder / "ip-adapter.safetensors"
    save_file(sd, str(path))
    return path
