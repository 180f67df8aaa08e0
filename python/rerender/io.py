"""Reading and writing media: video files (PyAV) and image sequences (OpenCV, OpenEXR).

Everything the pipeline processes is a uint8 RGB frame (H x W x 3, C-contiguous). Inputs with
more precision are converted on read, so the rest of the pipeline sees one format:

* 16-bit images (PNG, TIFF): ``round(v / 257)`` -- the exact linear map of 0..65535 onto 0..255.
* float images (EXR, HDR, float TIFF): treated as scene-linear RGB, encoded with the sRGB transfer
  curve and clipped to [0, 1] before quantising (the usual "view" of a linear render).
* grey images become RGB; an alpha channel is dropped.
* video: whatever the pixel format (8/10-bit, 4:2:0/4:4:4), libswscale converts to rgb24; a
  display-rotation tag (phone videos) is applied so frames appear upright.

Paths may contain spaces and any Unicode: images are read with ``np.fromfile`` + ``cv2.imdecode``
and written with ``cv2.imencode`` + ``tofile`` because ``cv2.imread`` cannot open non-ASCII paths
on every platform. Files are written atomically (temporary file + ``os.replace``) so a killed job
never leaves a half-written frame or video behind.

Frame counts are exact: :func:`probe` counts the video packets that the decoder will turn into
frames instead of trusting the container's frame-count field, and :func:`read_frames` checks the
number it actually decoded.
"""
from __future__ import annotations

import dataclasses
import fractions
import glob
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

# Only takes effect for OpenCV builds with OpenEXR support; we prefer the OpenEXR package anyway.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from .files import atomic_path, atomic_write_bytes  # noqa: E402

__all__ = [
    "MediaError",
    "MediaInfo",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "DEFAULT_SEQUENCE_FPS",
    "probe",
    "read_frames",
    "read_image",
    "write_image",
    "list_indexed_images",
    "list_sequence",
    "resolve_frames",
    "resize_to",
    "working_size",
    "write_video",
    "is_video_path",
]

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp", ".webp", ".hdr", ".ppm", ".pgm"}
)
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpeg", ".mpg", ".ts", ".m2ts", ".mts",
     ".wmv", ".flv", ".gif", ".3gp", ".ogv", ".mxf"}
)
DEFAULT_SEQUENCE_FPS = fractions.Fraction(24)
# Bounds of the working size: 8K plates fit; beyond, one frame's synthesis would need tens of GB.
MAX_WORKING_SIDE = 8192
MAX_WORKING_LONG_SIDE = 16384
MAX_WORKING_PIXELS = 8192 * 8192


class MediaError(ValueError):
    """A media file or argument is unusable; the message names the file and the problem."""


class AudioError(MediaError):
    """The audio track of a source cannot be carried over (undecodable, unsupported)."""


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` found out about a video file or an image sequence.

    ``width``/``height`` are the upright display size (rotation applied). ``bit_depth`` is the
    source precision per channel (8, 10, 12, 16; 32 for float images) and ``dtype`` the numpy
    type the source decodes to before the conversion to uint8. ``files`` lists a sequence's
    frames in order (empty for video files).
    """

    path: Path
    is_sequence: bool
    frame_count: int
    fps: fractions.Fraction
    width: int
    height: int
    has_audio: bool
    bit_depth: int
    dtype: str
    files: tuple[Path, ...] = ()

    @property
    def duration(self) -> float:
        """Length in seconds (frame_count / fps)."""
        return float(self.frame_count / self.fps)


# --------------------------------------------------------------------------------------------
# paths and sequences


def is_video_path(path: str | os.PathLike) -> bool:
    """True when ``path`` has a video-file extension (used to choose video vs folder output)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _natural_key(path: Path) -> list:
    # "frame2" sorts before "frame10"
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


_PRINTF = re.compile(r"%(0?)(\d*)d")


def _is_pattern(text: str) -> bool:
    return bool(_PRINTF.search(os.path.basename(text))) or any(c in text for c in "*?[")


def list_sequence(path: str | os.PathLike) -> list[Path]:
    """Frames of an image sequence in order: a folder of images, a printf pattern
    (``shot/%04d.png``) or a glob pattern (``shot/*.exr``). Sorted naturally by name
    (``f2`` before ``f10``); the position in this list is the frame index.
    """
    text = os.fspath(path)
    p = Path(text)
    if p.is_dir():
        files = [f for f in p.iterdir()
                 if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS]
        exts = sorted({f.suffix.lower() for f in files})
        if len(exts) > 1:
            raise MediaError(f"{p}: image sequence folder mixes file types {', '.join(exts)}; "
                             "keep one type per folder or pass a pattern such as 'folder/*.png'")
        if not files:
            raise MediaError(f"{p}: folder contains no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return sorted(files, key=_natural_key)
    m = _PRINTF.search(p.name)
    if m:
        folder = p.parent
        if not folder.is_dir():
            raise MediaError(f"{text}: folder {folder} does not exist")
        head, tail = p.name[: m.start()], p.name[m.end():]
        digits = r"\d{%s,}" % m.group(2) if m.group(1) else (r"\d{%s}" % m.group(2) if m.group(2) else r"\d+")
        rx = re.compile(re.escape(head) + "(" + digits + ")" + re.escape(tail) + r"\Z")
        found = [(int(mm.group(1)), f) for f in folder.iterdir() if (mm := rx.match(f.name))]
        if not found:
            raise MediaError(f"{text}: no files match the pattern")
        return [f for _, f in sorted(found)]
    if any(c in text for c in "*?["):
        files = [Path(f) for f in glob.glob(text) if Path(f).is_file()]
        if not files:
            raise MediaError(f"{text}: no files match the pattern")
        return sorted(files, key=_natural_key)
    raise MediaError(f"{text}: not a folder or a sequence pattern")


def list_indexed_images(folder: str | os.PathLike) -> dict[int, Path]:
    """Images in ``folder`` whose name stem is a zero-based frame index (``0000.png``, ``17.jpg``).

    Other files (non-images, hidden files, images with non-numeric names) are ignored. Two files
    for one index (``0010.png`` and ``10.jpg``) are an error naming both. Returns index -> path,
    sorted by index.
    """
    p = Path(folder)
    if not p.is_dir():
        raise MediaError(f"{p}: key-frame folder does not exist" if not p.exists()
                         else f"{p}: not a folder")
    found: dict[int, Path] = {}
    for f in p.iterdir():
        if f.name.startswith(".") or f.suffix.lower() not in IMAGE_EXTENSIONS or not f.is_file():
            continue
        if not (f.stem.isascii() and f.stem.isdigit()):
            continue
        idx = int(f.stem)
        if idx in found:
            a, b = sorted([found[idx], f])
            raise MediaError(f"{p}: two files for frame {idx}: {a.name} and {b.name}")
        found[idx] = f
    return dict(sorted(found.items()))


# --------------------------------------------------------------------------------------------
# images


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


def _read_image_raw(path: Path) -> tuple[np.ndarray, bool]:
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
    img, bgr = _read_image_raw(p)
    return _to_uint8_rgb(img, bgr, str(p))


def _check_rgb(rgb: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"{name}: expected uint8 H x W x 3 RGB, got {rgb.dtype} {rgb.shape}")
    return rgb


def write_image(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write a uint8 RGB image atomically; the format follows the extension (PNG: lossless,
    JPEG quality 95). Parent folders are created."""
    p = Path(path)
    _check_rgb(rgb, "rgb")
    ext = p.suffix.lower()
    if ext not in IMAGE_EXTENSIONS or ext in (".exr", ".hdr"):
        raise MediaError(f"{p}: cannot write 8-bit images with extension {p.suffix!r}; use .png")
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:
        raise MediaError(f"{p}: image encoding failed")
    with atomic_path(p) as tmp:
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


# --------------------------------------------------------------------------------------------
# sizes


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


# --------------------------------------------------------------------------------------------
# probing


def _open_video(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(os.fspath(path), "r")
    except av.FFmpegError as e:
        raise MediaError(f"{path}: cannot open video ({e.strerror or e})") from None
    if not container.streams.video:
        container.close()
        raise MediaError(f"{path}: contains no video stream")
    return container


def _pix_depth(fmt: av.VideoFormat) -> int:
    """Bits per component of a decoder pixel format (8, 10, 12, 16; 32 for float)."""
    bits = [c.bits for c in fmt.components]
    return max(bits) if bits else 8


def _rotation_k(frame: av.VideoFrame) -> int:
    """Quarter turns (for np.rot90) that make a frame with a display-rotation tag upright."""
    rot = getattr(frame, "rotation", 0) or 0
    return int(round(rot / 90.0)) % 4


def _probe_video(path: Path) -> MediaInfo:
    with _open_video(path) as container:
        stream = container.streams.video[0]
        has_audio = bool(container.streams.audio)
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not fps or fps <= 0:
            raise MediaError(f"{path}: video stream has no usable frame rate")
        # Count the packets the decoder will turn into frames (cheap: no decoding); discarded
        # packets (edit lists) and empty flush packets produce no frame.
        count = 0
        first_ok = False
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                count += 1
        except av.FFmpegError as e:
            raise MediaError(f"{path}: corrupt video stream ({e.strerror or e})") from None
        if count == 0:
            raise MediaError(f"{path}: video has no frames")
    # decode the first frame: proves the stream is decodable and gives the real pixel format
    with _open_video(path) as container:
        stream = container.streams.video[0]
        try:
            for frame in container.decode(stream):
                first_ok = True
                break
        except av.FFmpegError as e:
            raise MediaError(f"{path}: cannot decode video ({e.strerror or e})") from None
        if not first_ok:
            raise MediaError(f"{path}: video has no decodable frames")
        w, h = frame.width, frame.height
        if _rotation_k(frame) % 2:
            w, h = h, w
        depth = _pix_depth(frame.format)
    return MediaInfo(path=path, is_sequence=False, frame_count=count, fps=fractions.Fraction(fps),
                     width=w, height=h, has_audio=has_audio, bit_depth=depth,
                     dtype="uint8" if depth <= 8 else ("uint16" if depth <= 16 else "float32"))


def _probe_sequence(path: str | os.PathLike, fps: fractions.Fraction) -> MediaInfo:
    files = list_sequence(path)
    raw, _ = _read_image_raw(files[0])
    h, w = raw.shape[:2]
    depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(raw.dtype, 32 if raw.dtype.kind == "f" else 8)
    return MediaInfo(path=Path(path), is_sequence=True, frame_count=len(files), fps=fps,
                     width=w, height=h, has_audio=False, bit_depth=depth, dtype=str(raw.dtype),
                     files=tuple(files))


def _as_fps(fps) -> fractions.Fraction:
    try:
        f = fractions.Fraction(fps).limit_denominator(1_000_000) if isinstance(fps, float) else fractions.Fraction(fps)
    except (TypeError, ValueError):
        raise ValueError(f"fps: expected a positive number, got {fps!r}") from None
    if f <= 0:
        raise ValueError(f"fps: expected a positive number, got {fps!r}")
    return f


def probe(path: str | os.PathLike, fps: float | fractions.Fraction | None = None) -> MediaInfo:
    """Describe a video file or an image sequence (folder, ``%04d`` or glob pattern).

    ``fps`` sets the rate of an image sequence (default 24); for video files it overrides the
    stream's rate if given. Raises :class:`MediaError` for missing, unsupported, corrupt or
    empty inputs.
    """
    text = os.fspath(path)
    p = Path(text)
    rate = None if fps is None else _as_fps(fps)
    if p.is_dir() or (not p.exists() and _is_pattern(text)):
        return _probe_sequence(text, rate or DEFAULT_SEQUENCE_FPS)
    if not p.exists():
        raise MediaError(f"{p}: file does not exist")
    ext = p.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        # a single image is a one-frame sequence
        return _single_image_info(p, rate)
    if ext not in VIDEO_EXTENSIONS:
        raise MediaError(f"{p}: unsupported file type {p.suffix!r} (video: "
                         f"{', '.join(sorted(VIDEO_EXTENSIONS))}; or an image folder/pattern)")
    info = _probe_video(p)
    return dataclasses.replace(info, fps=rate) if rate else info


def _single_image_info(p: Path, rate: fractions.Fraction | None) -> MediaInfo:
    raw, _ = _read_image_raw(p)
    depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(raw.dtype, 32 if raw.dtype.kind == "f" else 8)
    return MediaInfo(path=p, is_sequence=True, frame_count=1, fps=rate or DEFAULT_SEQUENCE_FPS,
                     width=raw.shape[1], height=raw.shape[0], has_audio=False, bit_depth=depth,
                     dtype=str(raw.dtype), files=(p,))


# --------------------------------------------------------------------------------------------
# reading frames


def resolve_frames(frames: slice | range | None, count: int, where: str) -> range:
    """Turn a frame selection (slice, range or None = all) into a range of absolute indices for
    a clip of ``count`` frames; negative slice bounds count from the end. Out-of-bounds or empty
    selections raise :class:`MediaError` naming ``where`` (the file)."""
    if frames is None:
        return range(count)
    if isinstance(frames, range):
        r = frames
    elif isinstance(frames, slice):
        for name in ("start", "stop", "step"):
            v = getattr(frames, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
                raise MediaError(f"{where}: frame range {name} must be an integer, got {v!r}")
        start = frames.start if frames.start is not None else 0
        stop = frames.stop if frames.stop is not None else count
        step = frames.step if frames.step is not None else 1
        if start < 0:
            start += count
        if stop < 0:
            stop += count
        r = range(int(start), int(stop), int(step))
    else:
        raise MediaError(f"{where}: frames must be a slice or range, got {type(frames).__name__}")
    if r.step <= 0:
        raise MediaError(f"{where}: frame range step must be positive, got {r.step}")
    if r.start < 0 or r.start >= count or r.stop > count or len(r) == 0:
        raise MediaError(f"{where}: frame range {r.start}:{r.stop} is out of bounds or empty "
                         f"(the input has {count} frames, valid indices 0..{count - 1})")
    return r


def read_frames(path: str | os.PathLike, frames: slice | range | None = None, size: int | None = None,
                *, fps: float | fractions.Fraction | None = None) -> Iterator[np.ndarray]:
    """Yield the selected frames of a video or image sequence as uint8 RGB, in order, streamed.

    ``frames``: absolute zero-based selection (``slice(10, 20)``, ``range(0, 30, 2)``); bounds are
    checked up front (:class:`MediaError`). ``size``: working short side (see :func:`working_size`);
    None keeps the source size. The number of frames yielded is exactly ``len(selection)``; a
    stream that ends early (truncated file) raises :class:`MediaError`.
    """
    info = probe(path, fps=fps)
    sel = resolve_frames(frames, info.frame_count, str(info.path))
    hw = working_size(info.width, info.height, size)
    if info.is_sequence:
        return _iter_sequence(info, sel, hw)
    return _iter_video(info, sel, hw)


def _iter_sequence(info: MediaInfo, sel: range, hw: tuple[int, int]) -> Iterator[np.ndarray]:
    for i in sel:
        f = info.files[i]
        img = read_image(f)
        if img.shape[:2] != (info.height, info.width):
            raise MediaError(f"{f}: frame {i} is {img.shape[1]}x{img.shape[0]}, but the sequence "
                             f"starts with {info.width}x{info.height} ({info.files[0].name})")
        yield resize_to(img, hw)


def _iter_video(info: MediaInfo, sel: range, hw: tuple[int, int]) -> Iterator[np.ndarray]:
    path = info.path
    wanted = iter(sel)
    nxt = next(wanted)
    index = 0
    with _open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads; output order is unchanged
        try:
            for frame in container.decode(stream):
                if index == nxt:
                    rgb = frame.to_ndarray(format="rgb24")
                    k = _rotation_k(frame)
                    if k:
                        rgb = np.rot90(rgb, k)
                    if rgb.shape[:2] != (info.height, info.width):
                        raise MediaError(f"{path}: frame {index} is {rgb.shape[1]}x{rgb.shape[0]}, "
                                         f"expected {info.width}x{info.height} (size changes mid-stream)")
                    yield np.ascontiguousarray(resize_to(rgb, hw))
                    nxt = next(wanted, None)
                    if nxt is None:
                        return
                index += 1
        except av.FFmpegError as e:
            raise MediaError(f"{path}: decoding failed at frame {index} ({e.strerror or e})") from None
    raise MediaError(f"{path}: stream ended after {index} decoded frames, but frame {nxt} was "
                     f"requested (truncated or corrupt file; {info.frame_count} frames expected)")


# --------------------------------------------------------------------------------------------
# writing video


def _pick_video_codec(container: av.container.OutputContainer, path: Path) -> str:
    ext = path.suffix.lower()
    supported = container.supported_codecs
    if ext in (".webm",):
        prefs = ["libvpx-vp9", "libvpx", "libaom-av1"]
    elif ext in (".mpeg", ".mpg"):
        prefs = ["mpeg2video", "mpeg1video"]
    elif ext == ".gif":
        prefs = ["gif"]
    else:
        prefs = ["libx264", "libopenh264", "h264", "mpeg4", "mjpeg"]
    for name in prefs:
        if name in av.codecs_available and name in supported:
            try:
                av.codec.Codec(name, "w")
            except (av.FFmpegError, ValueError):
                continue
            return name
    raise MediaError(f"{path}: no suitable video encoder for this container in this PyAV build")


def _pick_audio_codec(container: av.container.OutputContainer, path: Path) -> str:
    prefs = ["libopus", "opus", "libvorbis"] if path.suffix.lower() == ".webm" else ["aac", "libmp3lame", "mp2"]
    for name in prefs:
        if name in av.codecs_available and name in container.supported_codecs:
            return name
    raise AudioError(f"{path}: no audio encoder for this container in this PyAV build")


class _AudioSource:
    """Audio packets for the output, taken from ``src`` between ``start`` and ``start+duration``
    seconds, measured from the start of ``src``'s video stream (so picture and sound stay in
    sync). The track is stream-copied when all of it is used, it starts with the video and the
    container accepts its codec; otherwise it is decoded, trimmed to the sample and re-encoded
    (AAC; Opus for WebM)."""

    def __init__(self, src: Path, out: av.container.OutputContainer, out_path: Path,
                 start: float, duration: float | None):
        try:
            self._setup(src, out, out_path, start, duration)
        except av.FFmpegError as e:
            raise AudioError(f"{src}: cannot carry the audio track over ({e.strerror or e})") from None

    def _setup(self, src: Path, out: av.container.OutputContainer, out_path: Path,
               start: float, duration: float | None) -> None:
        self.input = _open_input_any(src)
        self.in_stream = ist = self.input.streams.audio[0]
        self.start = max(0.0, float(start))
        self.end = None if duration is None else self.start + max(0.0, float(duration))
        # time zero of the output = first video timestamp of the source (e.g. MPEG-TS starts
        # video a few ms after audio)
        vs = self.input.streams.video[0] if self.input.streams.video else None
        if vs is not None and vs.start_time is not None:
            self.origin = float(vs.start_time * vs.time_base)
        else:
            self.origin = (self.input.start_time or 0) / 1e6
        a_start = float(ist.start_time * ist.time_base) if ist.start_time is not None else self.origin
        track_end = (a_start + float(ist.duration * ist.time_base) if ist.duration
                     else (self.input.duration / 1e6 if self.input.duration else None))
        whole = (self.start == 0.0 and abs(a_start - self.origin) < 1e-3
                 and (self.end is None or (track_end is not None and self.origin + self.end >= track_end - 1e-3)))
        self.copy = whole and ist.codec_context.name in out.supported_codecs
        if self.copy:
            self.out_stream = out.add_stream_from_template(ist)
            return
        name = _pick_audio_codec(out, out_path)
        cc = ist.codec_context
        rate = 48000 if name in ("libopus", "opus") else (cc.sample_rate or 48000)  # Opus: 48 kHz only
        channels = len(cc.layout.channels) if cc.layout else 2
        layout = cc.layout.name if cc.layout and (channels <= 2 or name == "aac") else "stereo"
        self.out_stream = out.add_stream(name, rate=rate)
        self.out_stream.layout = layout
        fmt = self.out_stream.codec_context.codec.audio_formats[0].name
        self.resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        self.rate = rate

    def packets(self) -> Iterator[tuple[float, av.Packet]]:
        """(time in seconds, packet) in stream order."""
        try:
            if self.copy:
                yield from self._copied()
            else:
                yield from self._encoded()
        except av.FFmpegError as e:
            raise AudioError(f"{self.input.name}: reading the audio track failed ({e.strerror or e})") from None

    def _copied(self):
        for packet in self.input.demux(self.in_stream):
            if packet.dts is None or packet.size == 0:
                continue
            t = float(packet.dts * packet.time_base)
            packet.stream = self.out_stream
            yield t, packet

    def _encoded(self):
        rate = self.rate
        first = int(round(self.start * rate))  # selection in samples from the output's time zero
        last = None if self.end is None else int(round(self.end * rate))
        pos: int | None = None  # position (samples from time zero) of the next resampled sample

        def trimmed(rf: av.AudioFrame):
            nonlocal pos
            a, b = pos, pos + rf.samples
            pos = b
            lo, hi = max(a, first), (b if last is None else min(b, last))
            if hi <= lo:
                return
            arr = rf.to_ndarray()  # planar: (channels, samples); packed: (1, samples*channels)
            ch = 1 if rf.format.is_planar else len(rf.layout.channels)
            cut = np.ascontiguousarray(arr[:, (lo - a) * ch:(hi - a) * ch])
            nf = av.AudioFrame.from_ndarray(cut, format=rf.format.name, layout=rf.layout.name)
            nf.sample_rate = rate
            nf.time_base = fractions.Fraction(1, rate)
            nf.pts = lo - first
            yield from self.out_stream.encode(nf)

        def timed(packets):
            for packet in packets:
                yield (float(packet.pts * packet.time_base) if packet.pts is not None else 0.0), packet

        for frame in self.input.decode(self.in_stream):
            if pos is None:
                t0 = frame.time if frame.time is not None else self.origin
                pos = int(round((t0 - self.origin) * rate))
            for rf in self.resampler.resample(frame):
                yield from timed(trimmed(rf))
            if last is not None and pos >= last:
                break
        if pos is not None:
            for rf in self.resampler.resample(None):
                yield from timed(trimmed(rf))
        yield from timed(self.out_stream.encode(None))

    def close(self):
        self.input.close()


def _open_input_any(path: Path) -> av.container.InputContainer:
    try:
        return av.open(os.fspath(path), "r")
    except av.FFmpegError as e:
        raise MediaError(f"{path}: cannot open audio source ({e.strerror or e})") from None


def audio_problem(path: str | os.PathLike, packets: int = 8) -> str | None:
    """Why the first audio track of ``path`` cannot be carried over (no decoder for its codec, or
    its first packets do not decode), or None when it can. Checked before a job starts, so that a
    bad track is known long before the output is written."""
    try:
        with _open_input_any(Path(path)) as c:
            if not c.streams.audio:
                return None
            stream = c.streams.audio[0]
            name = stream.codec_context.name
            try:
                av.codec.Codec(name, "r")
            except (av.FFmpegError, ValueError):
                return f"{path}: this FFmpeg build has no decoder for the audio codec {name!r}"
            for n, packet in enumerate(c.demux(stream)):
                if n >= packets:
                    break
                packet.decode()
    except av.FFmpegError as e:
        return f"{path}: the audio track does not decode ({e.strerror or e})"
    except MediaError as e:
        return str(e)
    return None


def _has_audio(path: Path) -> bool:
    """Whether ``path`` has an audio track; image sequences (folders, patterns) have none."""
    if not path.exists() and _is_pattern(os.fspath(path)):
        return False
    if not path.exists():
        raise MediaError(f"{path}: audio source does not exist")
    if path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS:
        return False
    with _open_input_any(path) as c:
        return bool(c.streams.audio)


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float | fractions.Fraction,
                audio_from: str | os.PathLike | None = None, audio_start: float = 0.0,
                audio_duration: float | None = None, *, crf: int = 18, fsync: bool = False) -> int:
    """Encode uint8 RGB frames to a video file; returns the number of frames written.

    Codec: H.264 (libx264, ``crf`` quality, yuv420p) for mp4/mov/mkv/avi..., VP9 for WebM,
    MPEG-2 for .mpeg; fallbacks if the PyAV build lacks one. yuv420p needs even sizes, so an odd
    width/height is padded by one replicated edge row/column (never cropped: no pixel is lost).
    The rate is exactly ``fps`` (e.g. ``Fraction(30000, 1001)``); every given frame is written.

    ``audio_from``: a media file whose first audio track is carried over (time range
    ``audio_start`` .. ``audio_start + audio_duration`` seconds; None = to its end). The whole track
    is stream-copied when the container accepts its codec; a sub-range or an incompatible codec
    is re-encoded (AAC; Opus for WebM) and trimmed to the sample. A source without audio (or an
    image sequence) gives a silent video. The file is written atomically (``fsync``: and flushed
    to disk before it takes its name). An audio track that cannot be carried raises
    :class:`AudioError`.
    """
    p = Path(path)
    rate = _as_fps(fps)
    if p.suffix.lower() not in VIDEO_EXTENSIONS:
        raise MediaError(f"{p}: unsupported video extension {p.suffix!r} "
                         f"(use one of {', '.join(sorted(VIDEO_EXTENSIONS))})")
    audio_path = Path(audio_from) if audio_from is not None else None
    use_audio = audio_path is not None and _has_audio(audio_path)
    count = 0
    with atomic_path(p, fsync=fsync) as tmp:
        try:
            out = av.open(os.fspath(tmp), "w", format=_muxer_for(p))
        except av.FFmpegError as e:
            raise MediaError(f"{p}: cannot create video file ({e.strerror or e})") from None
        audio = None
        try:
            codec = _pick_video_codec(out, p)
            vstream = None
            pending: Iterator[tuple[float, av.Packet]] | None = None
            head: tuple[float, av.Packet] | None = None

            def mux_audio_until(t: float | None) -> None:
                nonlocal head
                if pending is None:
                    return
                while True:
                    if head is None:
                        head = next(pending, None)
                        if head is None:
                            return
                    if t is not None and head[0] > t:
                        return
                    out.mux(head[1])
                    head = None

            for i, rgb in enumerate(frames):
                _check_rgb(rgb, f"frames[{i}]")
                h, w = rgb.shape[:2]
                if vstream is None:
                    vstream = out.add_stream(codec, rate=rate)
                    vstream.width, vstream.height = w + (w % 2), h + (h % 2)
                    vstream.pix_fmt = "yuv420p" if codec != "gif" else "rgb8"
                    vstream.codec_context.time_base = 1 / rate
                    if codec == "libx264":
                        vstream.options = {"crf": str(crf), "preset": "medium"}
                    elif codec in ("libvpx-vp9", "libvpx"):
                        vstream.options = {"crf": str(max(crf, 4) + 12), "b": "0"}
                    elif codec in ("mpeg4", "mpeg2video", "mpeg1video", "mjpeg"):
                        # fixed quantiser 2 (ffmpeg's -q:v 2): near-transparent; 118 = FF_QP2LAMBDA
                        vstream.options = {"flags": "+qscale", "global_quality": str(2 * 118)}
                    if use_audio:
                        audio = _AudioSource(audio_path, out, p, audio_start, audio_duration)
                        pending = audio.packets()
                    fw, fh = w, h
                elif (w, h) != (fw, fh):
                    raise MediaError(f"{p}: frame {i} is {w}x{h}, but frame 0 was {fw}x{fh}")
                if h % 2 or w % 2:
                    rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame.pts = i
                frame.time_base = 1 / rate
                for packet in vstream.encode(frame):
                    out.mux(packet)
                count = i + 1
                mux_audio_until(float((i + 1) / rate))
            if vstream is None:
                raise MediaError(f"{p}: no frames to write")
            for packet in vstream.encode(None):
                out.mux(packet)
            mux_audio_until(None)
        except av.FFmpegError as e:
            raise MediaError(f"{p}: encoding failed ({e.strerror or e})") from None
        finally:
            if audio is not None:
                audio.close()
            out.close()
    return count


def _muxer_for(path: Path) -> str | None:
    # the temporary file keeps the extension, but name the muxer explicitly for odd ones
    return {".mkv": "matroska", ".m2ts": "mpegts", ".mts": "mpegts", ".ts": "mpegts",
            ".mpeg": "mpeg", ".mpg": "mpeg", ".ogv": "ogg", ".3gp": "3gp"}.get(path.suffix.lower())
