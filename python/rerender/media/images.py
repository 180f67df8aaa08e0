"""Still images: decoding any depth to the pipeline's frame format, encoding, sizing.

Everything the pipeline processes is a uint8 RGB frame (H x W x 3, C-contiguous). Inputs with
more precision are converted on read:

* 16-bit images (PNG, TIFF): ``round(v / 257)`` -- the exact linear map of 0..65535 onto 0..255.
* float images (EXR, HDR, float TIFF): treated as scene-linear RGB, encoded with the sRGB transfer
  curve and clipped to [0, 1] before quantising (the usual "view" of a linear render).
* grey images become RGB; an alpha channel is dropped.

Paths may contain spaces and any Unicode: images are read with ``np.fromfile`` + ``cv2.imdecode``
and written with ``cv2.imencode`` because ``cv2.imread`` cannot open non-ASCII paths on every
platform. Files are written atomically (:mod:`rerender.files`).
"""
from __future__ import annotations

import os
from pathlib import Path

# Only takes effect for OpenCV builds with OpenEXR support; we prefer the OpenEXR package anyway.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ..errors import MediaError  # noqa: E402
from ..files import atomic_path, atomic_write_bytes  # noqa: E402
from .sequences import IMAGE_EXTENSIONS  # noqa: E402

# Bounds of the working size: 8K plates fit; beyond, one frame's synthesis would need tens of GB.
MAX_WORKING_SIDE = 8192
MAX_WORKING_LONG_SIDE = 16384
MAX_WORKING_PIXELS = 8192 * 8192


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def _to_uint8_rgb(img: np.ndarray, is_bgr: bool, where: str) -> np.ndarray:
    """Convert a decoded image of any depth/channel count to uint8 RGB (see module docs)."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise MediaError(f"{where}: unsupported image layout {img.shape}")
    c = img.shape[2]
    if c in (1, 2):  # grey (+ alpha)
        img = np.repeat(img[:, :, :1], 3, axis=2)
    elif c == 4:
        img = img[:, :, :3]
    if is_bgr:
        img = img[:, :, ::-1]
    if img.dtype == np.uint8:
        out = img
    elif img.dtype == np.uint16:
        out = ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif img.dtype in (np.float16, np.float32, np.float64):
        f = np.nan_to_num(img.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        out = np.round(_srgb_encode(f) * 255.0).astype(np.uint8)
    elif img.dtype == np.int8 or img.dtype == np.int16 or img.dtype == np.int32:
        raise MediaError(f"{where}: signed integer images ({img.dtype}) are not supported")
    else:
        raise MediaError(f"{where}: unsupported pixel type {img.dtype}")
    return np.ascontiguousarray(out)


def _read_exr_raw(path: Path) -> np.ndarray:
    """Float RGB (or grey) pixels of an EXR file, H x W x C float32."""
    try:
        import OpenEXR  # the ASWF's official bindings; OpenCV wheels often lack EXR support
    except ImportError:
        OpenEXR = None
    if OpenEXR is None:
        img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise MediaError(f"{path}: cannot read EXR (install the 'openexr' package)")
        if img.ndim == 3:
            img = img[:, :, 2::-1] if img.shape[2] >= 3 else img
        return img.astype(np.float32)
    try:
        with OpenEXR.File(os.fspath(path), separate_channels=True) as f:
            ch = {k: v.pixels for k, v in f.channels().items()}
    except Exception as e:  # the bindings raise plain exceptions for corrupt files
        raise MediaError(f"{path}: cannot read EXR file ({e})") from None
    # plain names first, then layered names such as "beauty.R"
    def pick(name: str):
        if name in ch:
            return ch[name]
        hits = sorted(k for k in ch if k.endswith("." + name))
        return ch[hits[0]] if hits else None

    rgb = [pick(n) for n in ("R", "G", "B")]
    if all(x is not None for x in rgb):
        return np.stack([x.astype(np.float32) for x in rgb], axis=2)
    y = pick("Y")
    if y is not None:
        return y.astype(np.float32)
    if len(ch) == 1:
        return next(iter(ch.values())).astype(np.float32)
    raise MediaError(f"{path}: EXR has no R,G,B or Y channels (found {', '.join(sorted(ch))})")


def read_image_raw(path: Path) -> tuple[np.ndarray, bool]:
    """Decoded pixels at source precision and whether they are in BGR order."""
    if not path.exists():
        raise MediaError(f"{path}: file does not exist")
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, expected an image file")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise MediaError(f"{path}: unsupported image extension {path.suffix!r} "
                         f"(supported: {', '.join(sorted(IMAGE_EXTENSIONS))})")
    if path.suffix.lower() == ".exr":
        return _read_exr_raw(path), False
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise MediaError(f"{path}: cannot decode image (corrupt or empty file)")
    return img, True


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB H x W x 3 (16-bit/float converted, see module docs)."""
    p = Path(path)
    img, bgr = read_image_raw(p)
    return _to_uint8_rgb(img, bgr, str(p))


def check_rgb(rgb: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"{name}: expected uint8 H x W x 3 RGB, got {rgb.dtype} {rgb.shape}")
    return rgb


def check_writable(path: str | os.PathLike) -> None:
    """Raise :class:`MediaError` unless :func:`write_image` can write this extension."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in IMAGE_EXTENSIONS or ext in (".exr", ".hdr"):
        raise MediaError(f"{p}: cannot write 8-bit images with extension {p.suffix!r}; use .png, .tif or .jpg")


def write_image(path: str | os.PathLike, rgb: np.ndarray, *, fsync: bool = False) -> None:
    """Write a uint8 RGB image atomically; the format follows the extension (PNG: lossless,
    JPEG quality 95). Parent folders are created; ``fsync``: flushed to disk first."""
    p = Path(path)
    check_rgb(rgb, "rgb")
    check_writable(p)
    ext = p.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:
        raise MediaError(f"{p}: image encoding failed")
    with atomic_path(p, fsync=fsync) as tmp:
        buf.tofile(tmp)


def encode_png(img: np.ndarray, compression: int = 1) -> bytes:
    """PNG bytes of a uint8 RGB or grey image (fast compression: the work directory's files)."""
    arr = img[:, :, ::-1] if img.ndim == 3 and img.shape[2] == 3 else img
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise MediaError(f"PNG encoding failed for an image of shape {img.shape}")
    return buf.tobytes()


def write_png_if_changed(path: str | os.PathLike, img: np.ndarray) -> bool:
    """Write ``img`` as PNG unless ``path`` already holds exactly these bytes; True when written
    (a resumed job leaves finished files, and their timestamps, alone)."""
    data = encode_png(img)
    p = Path(path)
    try:
        if p.read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write_bytes(p, data)
    return True



def working_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    """Processing size ``(h, w)`` for a ``width`` x ``height`` source.

    ``size=None`` keeps the source size. Otherwise the short side becomes ``size`` (at most
    ``MAX_WORKING_SIDE``) rounded to the nearest multiple of 8 (at least 8) and the long side the
    multiple of 8 nearest to the aspect-preserving length. Working sizes above
    ``MAX_WORKING_LONG_SIDE`` px or ``MAX_WORKING_PIXELS`` are refused (:class:`MediaError`).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"working_size: invalid source size {width}x{height}")
    if size is None:
        hw = int(height), int(width)
    else:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
            raise ValueError(f"size: expected a positive integer, got {size!r}")
        if size > MAX_WORKING_SIDE:
            raise ValueError(f"size: {size} is above the largest working short side, {MAX_WORKING_SIDE} px")
        short_new = max(8, int(size / 8 + 0.5) * 8)  # halves round up
        short, long = min(width, height), max(width, height)
        long_new = max(8, int(long * short_new / short / 8 + 0.5) * 8)
        hw = (short_new, long_new) if height <= width else (long_new, short_new)
    h, w = hw
    if max(h, w) > MAX_WORKING_LONG_SIDE or h * w > MAX_WORKING_PIXELS:
        raise MediaError(f"working size {w}x{h} is too large (at most {MAX_WORKING_LONG_SIDE} px on the long side "
                         f"and {MAX_WORKING_PIXELS // 1_000_000} megapixels); choose a smaller --size")
    return hw


def resize_to(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize an image to ``(h, w)``: area averaging when shrinking (no aliasing), bicubic when
    enlarging. Returns the input unchanged when the size already matches."""
    h, w = int(hw[0]), int(hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"resize_to: invalid target size {hw}")
    if frame.shape[:2] == (h, w):
        return frame
    shrink = h * w < frame.shape[0] * frame.shape[1]
    out = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if out.ndim == 2 and frame.ndim == 3:
        out = out[:, :, None]
    return out

