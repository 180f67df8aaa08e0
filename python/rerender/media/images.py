"""Still images: decoding at any depth, the working format, encoding, sizing.

Two ways to read an image:

* :func:`read_image`: uint8 RGB (H x W x 3) -- what diffusion, key frames and 8-bit plates use.
  16-bit: ``round(v / 257)``, the exact linear map of 0..65535 onto 0..255; float (EXR, HDR, float
  TIFF): scene-linear, sRGB-encoded and clipped; grey becomes RGB; alpha is dropped.
* :func:`read_plate`: the source's own precision and its alpha. :func:`to_working` turns it into
  the job's *working format*: uint8 stays uint8; 16-bit and float plates become float32 on the
  0..255 scale the native core uses (float plates through :mod:`rerender.colour` to a
  display-referred space); :func:`from_working` returns to any output depth.

Paths may contain spaces and any Unicode: images are read with ``np.fromfile`` + ``cv2.imdecode``
and written with ``cv2.imencode`` because ``cv2.imread`` cannot open non-ASCII paths on every
platform. Files are written atomically (:mod:`rerender.files`).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

# Only takes effect for OpenCV builds with OpenEXR support; we prefer the OpenEXR package anyway.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ..errors import MediaError  # noqa: E402
from ..files import atomic_path, no_room, write_all, write_bytes_if_changed  # noqa: E402
from .formats import FORMATS, IMAGE_EXTENSIONS, writable_depths  # noqa: E402

# Bounds of the working size: 8K plates fit; beyond, one frame's synthesis would need tens of GB.
MAX_WORKING_SIDE = 8192
WORKING_MULTIPLE = 8  # working sides are rounded to multiples of this (working_size)
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
    """Float RGB(A) (or grey) pixels of an EXR file, H x W x C, float16 for a half-float file (its
    own precision), else float32. EXR alpha is premultiplied ("associated")."""
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
    alpha = pick("A")
    if all(x is not None for x in rgb):
        planes = rgb + ([alpha] if alpha is not None else [])
        dtype = np.float16 if all(x.dtype == np.float16 for x in planes) else np.float32
        return np.stack([x.astype(dtype) for x in planes], axis=2)
    y = pick("Y")
    if y is not None:
        return y if y.dtype in (np.float16, np.float32) else y.astype(np.float32)
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


def read_plate(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """An image at source precision, as (RGB, alpha or None) in RGB order: uint8, uint16, or float
    (float16/float32, scene-linear for EXR: convert with :mod:`rerender.colour`). Alpha is returned
    as stored: straight for PNG/TIFF, premultiplied for EXR."""
    p = Path(path)
    img, bgr = read_image_raw(p)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise MediaError(f"{p}: unsupported image layout {img.shape}")
    if img.dtype not in (np.uint8, np.uint16, np.float16, np.float32):
        raise MediaError(f"{p}: unsupported pixel type {img.dtype}")
    c = img.shape[2]
    alpha = img[:, :, c - 1] if c in (2, 4) else None
    rgb = np.repeat(img[:, :, :1], 3, axis=2) if c in (1, 2) else img[:, :, :3]
    if bgr:
        rgb = rgb[:, :, ::-1]
    return np.ascontiguousarray(rgb), (None if alpha is None else np.ascontiguousarray(alpha))


def read_grey(path: str | os.PathLike) -> np.ndarray:
    """A single-channel 8-bit image (a matte written by the job) as uint8 H x W."""
    p = Path(path)
    data = np.fromfile(p, dtype=np.uint8) if p.is_file() else np.zeros(0, np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if img is None:
        raise MediaError(f"{p}: cannot read the image (missing, corrupt or empty)")
    return img


def to_working(rgb: np.ndarray, colour=None) -> np.ndarray:
    """Source pixels -> the working format: uint8 stays uint8 (the 8-bit pipeline); uint16 and
    float become float32 on the 0..255 scale of the native core (16-bit: ``v / 257``, exact;
    float: through ``colour`` (a :class:`rerender.colour.ColourSpace`) to display-referred)."""
    if rgb.dtype == np.uint8:
        return rgb
    if rgb.dtype == np.uint16:
        return rgb.astype(np.float32) / np.float32(257.0)
    from ..colour import SceneLinearSRGB

    f = np.nan_to_num(rgb.astype(np.float32), nan=0.0, posinf=65504.0, neginf=-65504.0)
    return np.ascontiguousarray((colour or SceneLinearSRGB()).to_working(f) * np.float32(255.0))


def from_working(img: np.ndarray, dtype: str, colour=None) -> np.ndarray:
    """The working format back to a source type (``"uint8"``, ``"uint16"``, ``"float16"``,
    ``"float32"``), undoing :func:`to_working`."""
    if dtype == "uint8":
        return img if img.dtype == np.uint8 else np.clip(np.rint(img), 0, 255).astype(np.uint8)
    f = img.astype(np.float32)
    if dtype == "uint16":
        return np.clip(np.rint(f * 257.0), 0, 65535).astype(np.uint16)
    from ..colour import SceneLinearSRGB

    lin = (colour or SceneLinearSRGB()).from_working(f / np.float32(255.0))
    return lin.astype(np.float16 if dtype == "float16" else np.float32)


def check_rgb(rgb: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"{name}: expected uint8 H x W x 3 RGB, got {rgb.dtype} {rgb.shape}")
    return rgb


def check_writable(path: str | os.PathLike, dtype: str = "uint8") -> None:
    """Raise :class:`MediaError` unless :func:`write_image` can write ``dtype`` pixels to this
    extension."""
    p = Path(path)
    ext = p.suffix.lower()
    if dtype not in writable_depths(ext):
        writable = sorted(e for e, f in FORMATS.items() if f.kind == "image" and dtype in f.depths)
        raise MediaError(f"{p}: cannot write {dtype} images as {p.suffix or 'a file without extension'}; "
                         f"use {', '.join(writable)}")


def write_image(path: str | os.PathLike, rgb: np.ndarray, *, alpha: np.ndarray | None = None,
                fsync: bool = False, if_changed: bool = False) -> None:
    """Write an RGB image atomically, at its own depth: uint8 (PNG lossless, JPEG quality 95, ...),
    uint16 (PNG, TIFF), float16/float32 (EXR half/float, ZIP-compressed; float32 TIFF). ``alpha``
    (H x W, same dtype) adds a fourth channel, stored as given (straight for PNG/TIFF, premultiplied
    for EXR: the caller converts). Parent folders are created; ``fsync``: flushed to disk first;
    ``if_changed``: a file that already holds these bytes is left alone (a resumed job keeps
    finished files and their timestamps)."""
    p = Path(path)
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"rgb: expected an H x W x 3 array, got {getattr(rgb, 'dtype', type(rgb).__name__)} "
                         f"{getattr(rgb, 'shape', '')}")
    if alpha is not None and (alpha.shape != rgb.shape[:2] or alpha.dtype != rgb.dtype):
        raise ValueError(f"alpha: expected {rgb.dtype} {rgb.shape[:2]}, got {alpha.dtype} {alpha.shape}")
    check_writable(p, str(rgb.dtype))
    img = rgb if alpha is None else np.concatenate([rgb, alpha[:, :, None]], axis=2)
    with atomic_path(p, fsync=fsync, if_changed=if_changed) as tmp:
        if p.suffix.lower() == ".exr":
            _write_exr(tmp, img)
        else:
            write_all(tmp, _encode(p, img))


def _encode(path: Path, img: np.ndarray) -> np.ndarray:
    bgr = img[:, :, [2, 1, 0] + ([3] if img.shape[2] == 4 else [])]
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix.lower(), np.ascontiguousarray(bgr), params)
    if not ok:
        raise MediaError(f"{path}: image encoding failed")
    return buf


def _write_exr(path: Path, img: np.ndarray) -> None:
    try:
        import OpenEXR
    except ImportError:
        raise MediaError(f"{path}: writing EXR needs the 'openexr' package") from None
    name = "RGBA" if img.shape[2] == 4 else "RGB"
    header = {"type": OpenEXR.scanlineimage, "compression": OpenEXR.ZIP_COMPRESSION}
    with OpenEXR.File(header, {name: np.ascontiguousarray(img)}) as f:
        try:
            f.write(os.fspath(path))
        except RuntimeError as e:  # OpenEXR reports the system's error only in its message
            code = next((c for c in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) if os.strerror(c) in str(e)), None)
            if code is not None:
                raise no_room(path, code) from None
            raise MediaError(f"{path}: writing the EXR failed ({e})") from None


def encode_png(img: np.ndarray, compression: int = 1) -> bytes:
    """PNG bytes of a uint8 RGB or grey image (fast compression: the work directory's files)."""
    from ..packing import png_params

    arr = img[:, :, ::-1] if img.ndim == 3 and img.shape[2] == 3 else img
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), png_params(compression))
    if not ok:
        raise MediaError(f"PNG encoding failed for an image of shape {img.shape}")
    return buf.tobytes()


def write_png_if_changed(path: str | os.PathLike, img: np.ndarray) -> bool:
    """Write ``img`` as PNG unless ``path`` already holds exactly these bytes; True when written."""
    return write_bytes_if_changed(path, encode_png(img))


def aspect_matches(width: int, height: int, src_width: int, src_height: int) -> bool:
    """Whether an image of ``width`` x ``height`` has the aspect ratio of a ``src_width`` x
    ``src_height`` source, as far as :func:`working_size` keeps it: its short side is exact and its
    long side is rounded to a multiple of ``WORKING_MULTIPLE``, so up to half a step (4 px) off;
    beyond that 1% is allowed (an image scaled by hand)."""
    if src_width >= src_height:
        exact, long = height * src_width / src_height, width
    else:
        exact, long = width * src_height / src_width, height
    return abs(long - exact) <= max(WORKING_MULTIPLE / 2, 0.01 * exact)


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
        step = WORKING_MULTIPLE
        short_new = max(step, int(size / step + 0.5) * step)  # halves round up
        short, long = min(width, height), max(width, height)
        long_new = max(step, int(long * short_new / short / step + 0.5) * step)
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

