"""Compact encodings of the work directory's bulk arrays (candidates, error maps, flows).

At 1080p a raw candidate (uint8 image + float32 error map) is 14.5 MB and a float16 flow 8.3 MB;
these encodings bring them to about 2 + 1.7 MB and 1 MB on real footage:

- ``image``: uint8 H x W (x 1/3/4) -> PNG (lossless).
- ``map``: float32 H x W -> bfloat16 (the upper 16 bits of the float32, rounded to nearest even:
  8 significant bits, the full float32 range) in a 16-bit PNG.
- ``flow``: float32 H x W x 2 -> fixed point in steps of 1/32 px (coarser only for motions
  beyond +-1024 px) as 16-bit integers, the dx plane then the dy plane, their low bytes then
  their high bytes (the high bytes are nearly constant), zlib level 1: half the CPU of a 16-bit
  PNG for 7-13% more bytes (a flow is written on the propagation's main path and read back at
  most once). Work directories of earlier versions hold the same values in a 16-bit PNG; they
  are still read.

Lossy encodings are used only where every reader sees the decoded values: the writer keeps using
what it decodes (the flow cache returns decoded flows, the blend reads candidates back from disk),
so a resumed job computes exactly what an uninterrupted one does. Decoding is integer arithmetic
and exact float scaling, hence the same bits on every machine of a render farm.
"""
from __future__ import annotations

import zlib

import cv2
import numpy as np

FLOW_STEP_LOG2 = 5     # flows in steps of 2**-5 = 1/32 px
FLOW_ZLIB_LEVEL = 1
_OFFSET = 32768        # signed 16-bit values stored as offset binary

IMAGE_SUFFIX = ".png"
MAP_SUFFIX = ".bf16.png"
RAW_MAP_SUFFIX = ".bf16"  # a float map as raw bfloat16 (uint16) values: no encoding at all


def _png(arr: np.ndarray) -> np.ndarray:
    """PNG bytes with OpenCV's default settings (level 1, run-length strategy): on candidates half
    the CPU of level 1 with the default strategy, and smaller."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr))
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


def save_packed(path, *, compact: bool = True, **arrays) -> None:
    """Write ``arrays`` to an .npz file atomically, each in its compact encoding (:func:`pack`);
    ``compact`` False: images as they are and float maps as raw bfloat16 (the same values read
    back, about twice the bytes, a tenth of the CPU: for files that live only while a job runs)."""
    from .files import save_npz

    if compact:
        save_npz(path, **dict(pack(k, np.asarray(v)) for k, v in arrays.items()))
        return
    entries = {}
    for k, v in arrays.items():
        v = np.asarray(v)
        if v.dtype == np.float32 and v.ndim == 2 and v.size:
            entries[k + RAW_MAP_SUFFIX] = to_bfloat16(v)
        else:
            entries[k] = v
    save_npz(path, **entries)


def load_packed(path) -> dict[str, np.ndarray]:
    """The arrays of an .npz file by name, packed entries decoded (:func:`unpack`); files written by
    :func:`rerender.files.save_npz` read as they are."""
    from .files import load_npz

    return dict(unpack(k, v) for k, v in load_npz(path).items())


def unpack(entry: str, arr: np.ndarray) -> tuple[str, np.ndarray]:
    """Inverse of :func:`pack` (and of :func:`save_packed`'s raw maps): (name, decoded array)."""
    if entry.endswith(RAW_MAP_SUFFIX):
        return entry[:-len(RAW_MAP_SUFFIX)], from_bfloat16(arr)
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
    """float32 H x W x 2 -> npz entries: ``z16`` (fixed point, zlib, see the module docstring),
    ``shape`` and ``step_log2``; or ``raw`` (float32) for motions beyond what 16 bits hold at 1-px steps."""
    return encode_flow_values(flow)[0]


def encode_flow_values(flow: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(:func:`encode_flow`'s entries, the flow as :func:`decode_flow` reads them back), the values
    computed from the fixed-point numbers, without decoding what was just compressed."""
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"encode_flow: expected H x W x 2, got shape {flow.shape}")
    flow = np.ascontiguousarray(flow, dtype=np.float32)
    peak = float(np.abs(flow).max()) if flow.size else 0.0  # NaN or inf propagate to the peak
    if not np.isfinite(peak):
        raise ValueError("encode_flow: the flow holds NaN or infinite values")
    k = FLOW_STEP_LOG2
    while k > 0 and peak * 2.0 ** k > _OFFSET - 2:
        k -= 1
    if peak * 2.0 ** k > _OFFSET - 2:
        return {"raw": flow}, flow
    # scaling by a power of two is exact in float32: the same integers as in float64
    q = np.rint(flow * np.float32(2.0 ** k)).astype(np.int16)
    planes = np.ascontiguousarray(q.transpose(2, 0, 1))  # dx plane, then dy plane
    # low bytes, then high bytes (little-endian whatever the machine: files move between machines)
    shuffled = np.ascontiguousarray(planes.astype("<i2", copy=False).view(np.uint8).reshape(-1, 2).T)
    entries = {"z16": np.frombuffer(zlib.compress(shuffled, FLOW_ZLIB_LEVEL), np.uint8),
               "shape": np.array(flow.shape[:2], np.int32), "step_log2": np.int32(k)}
    return entries, _from_fixed(q, k)


def _from_fixed(q: np.ndarray, step_log2: int) -> np.ndarray:
    """Flow values of the fixed-point numbers ``q`` (integers, H x W x 2) in steps of 2**-step_log2 px."""
    return np.ascontiguousarray(q.astype(np.float32) * np.float32(2.0 ** -int(step_log2)))


def decode_flow(entries: dict[str, np.ndarray]) -> np.ndarray:
    """Inverse of :func:`encode_flow`: float32 H x W x 2. Also reads the 16-bit PNG (``png``) that
    work directories written before the zlib encoding hold: the same fixed-point values."""
    if "raw" in entries:
        return np.ascontiguousarray(entries["raw"], dtype=np.float32)
    if "z16" in entries:
        h, w = (int(v) for v in np.asarray(entries["shape"]).reshape(2))
        try:
            data = zlib.decompress(np.asarray(entries["z16"], np.uint8).tobytes())
        except zlib.error as e:
            raise ValueError(f"flow: corrupt zlib data ({e})") from None
        if h <= 0 or w <= 0 or len(data) != 4 * h * w:
            raise ValueError(f"flow: {len(data)} bytes do not hold a {w}x{h} flow")
        low, high = np.frombuffer(data, np.uint8).reshape(2, -1)
        q = (low.astype(np.uint16) | (high.astype(np.uint16) << 8)).view(np.int16).reshape(2, h, w)
        return _from_fixed(q.transpose(1, 2, 0), entries["step_log2"])
    planar = _unpng(entries["png"], "flow")
    if planar.dtype != np.uint16 or planar.ndim != 2 or planar.shape[0] % 2:
        raise ValueError(f"flow: expected a planar 16-bit PNG, got {planar.dtype} {planar.shape}")
    h = planar.shape[0] // 2
    q = planar.astype(np.int32) - _OFFSET
    return _from_fixed(np.stack([q[:h], q[h:]], axis=-1), entries["step_log2"])


def quantise_flow(flow: np.ndarray) -> np.ndarray:
    """The values a flow has after :func:`encode_flow` / :func:`decode_flow`."""
    return encode_flow_values(flow)[1]
