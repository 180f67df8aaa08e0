"""Compact encodings of the work directory's bulk arrays (candidates, error maps, flows).

At 1080p a raw candidate (uint8 image + float32 error map) is 14.5 MB and a float16 flow 8.3 MB;
these encodings bring them to about 2 + 1.7 MB and 1 MB on real footage:

- ``image``: uint8 H x W (x 1/3/4) -> PNG (lossless).
- ``map``: float32 H x W -> bfloat16 (the upper 16 bits of the float32, rounded to nearest even:
  8 significant bits, the full float32 range) in a 16-bit PNG.
- ``flow``: float32 H x W x 2 -> fixed point in steps of 1/32 px (coarser only for motions
  beyond +-1024 px) in a 16-bit PNG, the two channels one above the other.

Lossy encodings are used only where every reader sees the decoded values: the writer keeps using
what it decodes (the flow cache returns decoded flows, the blend reads candidates back from disk),
so a resumed job computes exactly what an uninterrupted one does. Decoding is integer arithmetic
and exact float scaling, hence the same bits on every machine of a render farm.
"""
from __future__ import annotations

import cv2
import numpy as np

PNG_LEVEL = 1          # zlib level: the work directory's files are written once and read once or twice
# Every row filtered by "up" (the row above) instead of libpng's per-row choice among all five:
# measured on 1080p frames, candidates, bfloat16 error maps and flows, encoding takes 35-50% less
# CPU and decoding up to 35% less, for files within 1% of the size (docs/method.md, "Large frames").
# OpenCV before 4.11 has no filter option: its own choice stays.
_PNG_FILTER = [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP] if hasattr(cv2, "IMWRITE_PNG_FILTER") else []
FLOW_STEP_LOG2 = 5     # flows in steps of 2**-5 = 1/32 px
_OFFSET = 32768        # signed 16-bit values stored as offset binary

IMAGE_SUFFIX = ".png"
MAP_SUFFIX = ".bf16.png"


def png_params(level: int = PNG_LEVEL) -> list[int]:
    """``cv2.imencode`` parameters of the work directory's PNGs (zlib ``level``, fast filter)."""
    return [cv2.IMWRITE_PNG_COMPRESSION, level, *_PNG_FILTER]


def _png(arr: np.ndarray) -> np.ndarray:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), png_params())
    if not ok:
        raise ValueError(f"PNG encoding failed for an array of shape {arr.shape} ({arr.dtype})")
    return buf.reshape(-1)


def _unpng(buf: np.ndarray, what: str) -> np.ndarray:
    img = cv2.imdecode(np.asarray(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{what}: corrupt PNG data")
    return img


# ------------------------------------------------------------------------------------------------
# images and float maps


def encode_image(img: np.ndarray) -> np.ndarray:
    """uint8 H x W (x C) -> PNG bytes (uint8 1-D); channel order is kept (RGB stays RGB)."""
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3, 4))):
        raise ValueError(f"encode_image: expected uint8 H x W (x 1/3/4), got {img.dtype} {img.shape}")
    swap = img.ndim == 3 and img.shape[2] in (3, 4)
    return _png(img[:, :, [2, 1, 0, 3][:img.shape[2]]] if swap else img)


def decode_image(buf: np.ndarray, channels: int) -> np.ndarray:
    """Inverse of :func:`encode_image`; ``channels`` 0 = a grey H x W image, else H x W x channels."""
    img = _unpng(buf, "image")
    if img.dtype != np.uint8 or (img.shape[2] if img.ndim == 3 else 0) != (channels if channels != 1 else 0):
        raise ValueError(f"image: expected {channels or 'grey'} channel(s) of uint8, got {img.dtype} {img.shape}")
    if img.ndim == 2 and channels == 1:
        img = img[:, :, None]
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        img = img[:, :, [2, 1, 0, 3][:img.shape[2]]]
    return np.ascontiguousarray(img)


def to_bfloat16(values: np.ndarray) -> np.ndarray:
    """float32 -> the upper half of its bits, rounded to nearest even (uint16). NaN stays NaN."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = ((bits.astype(np.uint64) + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    if nan.any():
        rounded[nan] = 0x7FC0
    return rounded


def from_bfloat16(half: np.ndarray) -> np.ndarray:
    return (half.astype(np.uint32) << 16).view(np.float32)


def encode_map(values: np.ndarray) -> np.ndarray:
    """float32 H x W -> bfloat16 in a 16-bit PNG (bytes, uint8 1-D)."""
    if values.ndim != 2:
        raise ValueError(f"encode_map: expected a 2-D float map, got shape {values.shape}")
    return _png(to_bfloat16(values))


def decode_map(buf: np.ndarray) -> np.ndarray:
    half = _unpng(buf, "float map")
    if half.dtype != np.uint16 or half.ndim != 2:
        raise ValueError(f"float map: expected a 16-bit grey PNG, got {half.dtype} {half.shape}")
    return from_bfloat16(half)


def quantise_map(values: np.ndarray) -> np.ndarray:
    """The values a float map has after :func:`encode_map` / :func:`decode_map`."""
    return from_bfloat16(to_bfloat16(values))


def pack(name: str, arr: np.ndarray) -> tuple[str, np.ndarray]:
    """An npz entry for ``arr``: uint8 images become PNG (``NAME.g.png`` grey, ``NAME.cC.png`` with C
    channels), float32 2-D maps ``NAME.bf16.png``; anything else is stored as it is."""
    if arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))) and arr.size:
        layout = "g" if arr.ndim == 2 else f"c{arr.shape[2]}"  # grey H x W, or H x W x C
        return f"{name}.{layout}{IMAGE_SUFFIX}", encode_image(arr)
    if arr.dtype == np.float32 and arr.ndim == 2 and arr.size:
        return name + MAP_SUFFIX, encode_map(arr)
    return name, arr


def save_packed(path, **arrays) -> None:
    """Write ``arrays`` to an .npz file atomically, each in its compact encoding (:func:`pack`)."""
    from .files import save_npz

    save_npz(path, **dict(pack(k, np.asarray(v)) for k, v in arrays.items()))


def load_packed(path) -> dict[str, np.ndarray]:
    """The arrays of an .npz file by name, packed entries decoded (:func:`unpack`); files written by
    :func:`rerender.files.save_npz` read as they are."""
    from .files import load_npz

    return dict(unpack(k, v) for k, v in load_npz(path).items())


def unpack(entry: str, arr: np.ndarray) -> tuple[str, np.ndarray]:
    """Inverse of :func:`pack`: (name, decoded array)."""
    if entry.endswith(MAP_SUFFIX):
        return entry[:-len(MAP_SUFFIX)], decode_map(arr)
    if entry.endswith(IMAGE_SUFFIX):
        name, _, layout = entry[:-len(IMAGE_SUFFIX)].rpartition(".")
        if name and layout == "g":
            return name, decode_image(arr, 0)
        if name and layout[:1] == "c" and layout[1:].isdigit():
            return name, decode_image(arr, int(layout[1:]))
    return entry, arr


# ------------------------------------------------------------------------------------------------
# flows


def encode_flow(flow: np.ndarray) -> dict[str, np.ndarray]:
    """float32 H x W x 2 -> npz entries: ``png`` (fixed point, planar 16-bit PNG) and ``step_log2``;
    or ``raw`` (float32) for motions beyond what 16 bits hold at 1-px steps."""
    return encode_flow_values(flow)[0]


def encode_flow_values(flow: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(:func:`encode_flow`'s entries, the flow as :func:`decode_flow` reads them back), the values
    computed from the fixed-point numbers, without decoding the PNG just written."""
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"encode_flow: expected H x W x 2, got shape {flow.shape}")
    if not np.isfinite(flow).all():
        raise ValueError("encode_flow: the flow holds NaN or infinite values")
    peak = float(np.abs(flow).max()) if flow.size else 0.0
    k = FLOW_STEP_LOG2
    while k > 0 and peak * 2.0 ** k > _OFFSET - 2:
        k -= 1
    if peak * 2.0 ** k > _OFFSET - 2:
        raw = np.ascontiguousarray(flow, dtype=np.float32)
        return {"raw": raw}, raw
    q = np.rint(np.asarray(flow, np.float64) * 2.0 ** k).astype(np.int32)
    planar = np.concatenate([q[:, :, 0], q[:, :, 1]], axis=0) + _OFFSET
    return {"png": _png(planar.astype(np.uint16)), "step_log2": np.int32(k)}, _from_fixed(q, k)


def _from_fixed(q: np.ndarray, step_log2: int) -> np.ndarray:
    """Flow values of the fixed-point numbers ``q`` (int32 H x W x 2) in steps of 2**-step_log2 px."""
    return np.ascontiguousarray(q.astype(np.float32) * np.float32(2.0 ** -int(step_log2)))


def decode_flow(entries: dict[str, np.ndarray]) -> np.ndarray:
    """Inverse of :func:`encode_flow`: float32 H x W x 2."""
    if "raw" in entries:
        return np.ascontiguousarray(entries["raw"], dtype=np.float32)
    planar = _unpng(entries["png"], "flow")
    if planar.dtype != np.uint16 or planar.ndim != 2 or planar.shape[0] % 2:
        raise ValueError(f"flow: expected a planar 16-bit PNG, got {planar.dtype} {planar.shape}")
    h = planar.shape[0] // 2
    q = planar.astype(np.int32) - _OFFSET
    return _from_fixed(np.stack([q[:h], q[h:]], axis=-1), entries["step_log2"])


def quantise_flow(flow: np.ndarray) -> np.ndarray:
    """The values a flow has after :func:`encode_flow` / :func:`decode_flow`."""
    return encode_flow_values(flow)[1]
