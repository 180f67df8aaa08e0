"""Sound: carrying a source's audio track into an encoded video, in sync and trimmed to the frames."""
from __future__ import annotations

import fractions
import os
from collections.abc import Iterator
from pathlib import Path

from ._av import av
import numpy as np

from ..errors import AudioError, MediaError
from .formats import IMAGE_EXTENSIONS
from .sequences import is_pattern

def pick_audio_codec(container: av.container.OutputContainer, path: Path) -> str:
    prefs = ["libopus", "opus", "libvorbis"] if path.suffix.lower() == ".webm" else ["aac", "libmp3lame", "mp2"]
    for name in prefs:
        if name in av.codecs_available and name in container.supported_codecs:
            return name
    raise AudioError(f"{path}: no audio encoder for this container in this PyAV build")


class AudioSource:
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
        name = pick_audio_codec(out, out_path)
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


def has_audio(path: Path) -> bool:
    """Whether ``path`` has an audio track; image sequences (folders, patterns) have none."""
    if not path.exists() and is_pattern(os.fspath(path)):
        return False
    if not path.exists():
        raise MediaError(f"{path}: audio source does not exist")
    if path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS:
        return False
    with _open_input_any(path) as c:
        return bool(c.streams.audio)


