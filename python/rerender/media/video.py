"""Video files and clips: probing, decoding frames (PyAV; sequences through :mod:`.images`), encoding.

Video frames are decoded to uint8 RGB whatever the pixel format (8/10-bit, 4:2:0/4:4:4: libswscale
converts to rgb24); a display-rotation tag (phone videos) is applied so frames appear upright.

Frame counts are exact: :func:`probe` counts the video packets that the decoder will turn into
frames instead of trusting the container's frame-count field, and :func:`read_frames` checks the
number it actually decoded.
"""
from __future__ import annotations

import dataclasses
import fractions
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from ._av import av
import numpy as np

from ..errors import MediaError
from ..files import atomic_path
from .audio import AudioSource, has_audio
from .formats import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, format_of
from .images import check_rgb, read_image, read_image_raw, resize_to, working_size
from .sequences import (DEFAULT_SEQUENCE_FPS, Numbering, is_pattern, list_sequence,
                        sequence_numbering)

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
    numbering: Numbering | None = None
    """A sequence's frame numbers and file naming (None: numbered by position, or a video)."""
    timecode: str | None = None
    """The video's start timecode (HH:MM:SS:FF, ';' before FF for drop-frame), when it has one."""
    has_alpha: bool = False
    """A sequence's (first) image has an alpha channel."""

    @property
    def duration(self) -> float:
        """Length in seconds (frame_count / fps)."""
        return float(self.frame_count / self.fps)



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
        timecode = _timecode(container)
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
                     dtype="uint8" if depth <= 8 else ("uint16" if depth <= 16 else "float32"), timecode=timecode)


# --------------------------------------------------------------------------------------------
# timecode

_TIMECODE = re.compile(r"\A(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2})\Z")


def _timecode(container: av.container.InputContainer) -> str | None:
    """The start timecode in a container's or one of its streams' metadata (a QuickTime tmcd
    track, MXF, Matroska TIMECODE tag), if any."""
    for meta in [container.metadata] + [st.metadata for st in container.streams]:
        for key, value in meta.items():
            if key.lower() == "timecode" and _TIMECODE.match(value.strip()):
                return value.strip()
    return None


def timecode_offset(timecode: str, frames: int, fps: fractions.Fraction) -> str:
    """``timecode`` moved on by ``frames`` frames at ``fps`` (the start of ``--frames A:B``).

    Non-drop timecode counts the nominal rate (24 for 23.976); drop-frame (``;``), for 29.97 and
    59.94, skips frame numbers 0-1 (0-3) at every minute not divisible by ten, as SMPTE 12M does.
    """
    m = _TIMECODE.match(timecode.strip())
    if m is None:
        raise MediaError(f"timecode: {timecode!r} is not HH:MM:SS:FF")
    hh, mm, ss, sep, ff = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4), int(m.group(5))
    nominal = max(1, round(float(fps)))
    drop = (2 * nominal // 30) if sep in ";," and nominal % 30 == 0 else 0
    minutes = 60 * hh + mm
    n = (3600 * hh + 60 * mm + ss) * nominal + ff - drop * (minutes - minutes // 10) + frames
    if drop:
        per_10 = nominal * 600 - 9 * drop
        per_min = nominal * 60 - drop
        tens, rest = divmod(n, per_10)
        n += 9 * drop * tens + (drop * ((rest - drop) // per_min) if rest > drop else 0)
    ff, n = n % nominal, n // nominal
    ss, n = n % 60, n // 60
    mm, hh = n % 60, (n // 60) % 24
    return f"{hh:02d}:{mm:02d}:{ss:02d}{sep}{ff:02d}"


def _image_info(path: Path, files: list[Path], fps: fractions.Fraction, **extra) -> MediaInfo:
    """A sequence's (or a single image's) description, from its first file."""
    raw, _ = read_image_raw(files[0])
    depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(raw.dtype, 32 if raw.dtype.kind == "f" else 8)
    return MediaInfo(path=path, is_sequence=True, frame_count=len(files), fps=fps, width=raw.shape[1],
                     height=raw.shape[0], has_audio=False, bit_depth=depth, dtype=str(raw.dtype),
                     files=tuple(files), has_alpha=raw.ndim == 3 and raw.shape[2] in (2, 4), **extra)


def _probe_sequence(path: str | os.PathLike, fps: fractions.Fraction) -> MediaInfo:
    files = list_sequence(path)
    return _image_info(Path(path), files, fps, numbering=sequence_numbering(files))


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
    if p.is_dir() or (not p.exists() and is_pattern(text)):
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
    return _image_info(p, [p], rate or DEFAULT_SEQUENCE_FPS)



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
                *, fps: float | fractions.Fraction | None = None, info: MediaInfo | None = None) -> Iterator[np.ndarray]:
    """Yield the selected frames of a video or image sequence as uint8 RGB, in order, streamed.

    ``frames``: absolute zero-based selection (``slice(10, 20)``, ``range(0, 30, 2)``); bounds are
    checked up front (:class:`MediaError`). ``size``: working short side (see :func:`working_size`);
    None keeps the source size. The number of frames yielded is exactly ``len(selection)``; a
    stream that ends early (truncated file) raises :class:`MediaError`. A selection that starts
    late seeks to the key frame before it rather than decoding from the start (same pixels).
    ``info``: :func:`probe`'s result for ``path`` when the caller has it (saves probing again).
    """
    info = info if info is not None else probe(path, fps=fps)
    sel = resolve_frames(frames, info.frame_count, str(info.path))
    hw = working_size(info.width, info.height, size)
    if info.is_sequence:
        return _iter_sequence(info, sel, hw)
    return _iter_video(info, sel, hw)


def check_sequence_frame(info: MediaInfo, i: int, img: np.ndarray) -> np.ndarray:
    """``img``, frame ``i`` of the sequence ``info``, or a :class:`MediaError` when its size is not
    the sequence's."""
    if img.shape[:2] != (info.height, info.width):
        raise MediaError(f"{info.files[i]}: frame {i} is {img.shape[1]}x{img.shape[0]}, but the sequence "
                         f"starts with {info.width}x{info.height} ({info.files[0].name})")
    return img


def _iter_sequence(info: MediaInfo, sel: range, hw: tuple[int, int]) -> Iterator[np.ndarray]:
    for i in sel:
        yield resize_to(check_sequence_frame(info, i, read_image(info.files[i])), hw)


def _iter_video(info: MediaInfo, sel: range, hw: tuple[int, int]) -> Iterator[np.ndarray]:
    """Decode the selected frames; a range that starts late seeks to the key frame before it
    instead of decoding from the start (:func:`_seek_target`), with the same pixels."""
    target = _seek_target(info.path, sel.start) if sel.start > 0 else None
    if target is not None:
        frames = _decode(info, sel, hw, seek=target)
        try:
            first = next(frames)
        except _SeekMissed:
            pass  # the container could not seek there: decode from the start instead
        else:
            yield first
            yield from frames
            return
    yield from _decode(info, sel, hw, seek=None)


class _SeekMissed(Exception):
    """Decoding after a seek did not reach the wanted frame exactly (an odd container)."""


def _seek_target(path: Path, start: int) -> tuple[int, dict[int, int]] | None:
    """(presentation time of frame ``start``, index of every frame by presentation time), or None
    when the stream's timestamps cannot name frames (missing or repeated), which decodes from
    the start. Frames are the packets :func:`probe` counts, in presentation order."""
    with _open_video(path) as container:
        stream = container.streams.video[0]
        times = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    return None
                times.append(packet.pts)
        except av.FFmpegError:
            return None
    times.sort()
    index = {t: i for i, t in enumerate(times)}
    if len(index) != len(times) or start >= len(times):
        return None
    return times[start], index


def _decode(info: MediaInfo, sel: range, hw: tuple[int, int],
            seek: tuple[int, dict[int, int]] | None) -> Iterator[np.ndarray]:
    """Yield the frames of ``sel``. ``seek``: (time, index by time) from :func:`_seek_target`; frames
    are then named by their timestamps, and :class:`_SeekMissed` is raised before anything is
    yielded if decoding does not land on frame ``sel.start`` exactly."""
    path = info.path
    wanted = iter(sel)
    nxt = next(wanted)
    index = 0
    with _open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads; output order is unchanged
        if seek is not None:
            try:
                # backward: the key frame at or before the target, from which decoding is exact
                container.seek(seek[0], stream=stream, backward=True, any_frame=False)
            except av.FFmpegError:
                raise _SeekMissed from None
        try:
            for frame in container.decode(stream):
                if seek is not None:  # name the frame by its timestamp
                    at = seek[1].get(frame.pts) if frame.pts is not None else None
                    if at is None:
                        if nxt == sel.start:
                            raise _SeekMissed
                        raise MediaError(f"{path}: a frame after frame {index - 1} has a timestamp ({frame.pts}) "
                                         "that no packet of the stream has (corrupt stream)")
                    index = at
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
                elif index > nxt:  # only after a seek: the wanted frame never came out of the decoder
                    if nxt == sel.start:
                        raise _SeekMissed
                    raise MediaError(f"{path}: the decoder skipped frame {nxt} (corrupt stream)")
                index += 1
        except av.FFmpegError as e:
            if seek is not None and nxt == sel.start:
                raise _SeekMissed from None
            raise MediaError(f"{path}: decoding failed at frame {index} ({e.strerror or e})") from None
    if seek is not None and nxt == sel.start:
        raise _SeekMissed
    raise MediaError(f"{path}: stream ended after {index} decoded frames, but frame {nxt} was "
                     f"requested (truncated or corrupt file; {info.frame_count} frames expected)")


def _pick_video_codec(container: av.container.OutputContainer, path: Path) -> str:
    prefs = format_of(path.suffix).codecs
    supported = container.supported_codecs
    for name in prefs:
        if name in av.codecs_available and name in supported:
            try:
                av.codec.Codec(name, "w")
            except (av.FFmpegError, ValueError):
                continue
            return name
    raise MediaError(f"{path}: no suitable video encoder for this container in this PyAV build")



def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float | fractions.Fraction,
                audio_from: str | os.PathLike | None = None, audio_start: float = 0.0,
                audio_duration: float | None = None, *, crf: int = 18, fsync: bool = False,
                timecode: str | None = None) -> int:
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
    :class:`AudioError`. ``timecode``: the start timecode to record (a tmcd track in MOV/MP4, a tag in
    Matroska), e.g. the input's moved on to the first frame written (:func:`timecode_offset`).
    """
    p = Path(path)
    rate = _as_fps(fps)
    if p.suffix.lower() not in VIDEO_EXTENSIONS:
        raise MediaError(f"{p}: unsupported video extension {p.suffix!r} "
                         f"(use one of {', '.join(sorted(VIDEO_EXTENSIONS))})")
    audio_path = Path(audio_from) if audio_from is not None else None
    use_audio = audio_path is not None and has_audio(audio_path)
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
                check_rgb(rgb, f"frames[{i}]")
                h, w = rgb.shape[:2]
                if vstream is None:
                    vstream = out.add_stream(codec, rate=rate)
                    vstream.width, vstream.height = w + (w % 2), h + (h % 2)
                    vstream.pix_fmt = "yuv420p" if codec != "gif" else "rgb8"
                    vstream.codec_context.time_base = 1 / rate
                    if timecode:
                        vstream.metadata["timecode"] = timecode
                    if codec == "libx264":
                        vstream.options = {"crf": str(crf), "preset": "medium"}
                    elif codec in ("libvpx-vp9", "libvpx"):
                        vstream.options = {"crf": str(max(crf, 4) + 12), "b": "0"}
                    elif codec in ("mpeg4", "mpeg2video", "mpeg1video", "mjpeg"):
                        # fixed quantiser 2 (ffmpeg's -q:v 2): near-transparent; 118 = FF_QP2LAMBDA
                        vstream.options = {"flags": "+qscale", "global_quality": str(2 * 118)}
                    if use_audio:
                        audio = AudioSource(audio_path, out, p, audio_start, audio_duration)
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
    return format_of(path.suffix).muxer
