"""Small synthetic media for tests (shared helper, owned by io-flow).

``moving_pattern`` renders a smooth random texture translated by a known velocity (so the true
optical flow is known); ``write_test_video`` encodes frames with PyAV, optionally with a sine
audio track; ``write_sequence`` writes an image sequence in PNG / 16-bit PNG / JPEG / EXR.
Everything is deterministic (seeded) and small, so tests stay fast.
"""
from __future__ import annotations

import fractions
import itertools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import av
import cv2
import numpy as np


def texture(h: int, w: int, seed: int = 0, blur: float = 2.0) -> np.ndarray:
    """A smooth random RGB texture (uint8 H x W x 3) with detail at every position, good for
    optical flow (no flat regions, no repeating pattern)."""
    rng = np.random.default_rng(seed)
    noise = rng.random((h, w, 3)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), blur, borderType=cv2.BORDER_REFLECT)
    lo, hi = img.min(axis=(0, 1)), img.max(axis=(0, 1))
    return np.round((img - lo) / (hi - lo) * 255).astype(np.uint8)


def moving_pattern(n: int = 20, h: int = 48, w: int = 64, velocity: tuple[float, float] = (1.0, 0.5),
                   seed: int = 0) -> list[np.ndarray]:
    """``n`` frames of a texture translating by ``velocity`` = (dx, dy) pixels per frame.

    Frame t shows the scene point p at p + t*velocity, i.e. frame_t(x) = scene(x - t*v), so the
    true flow_{t->t+1} is +velocity everywhere (except where content enters at the border).
    The scene is larger than the frame so no border padding appears.
    """
    vx, vy = velocity
    margin = int(np.ceil(max(abs(vx), abs(vy)) * n)) + 8
    scene = texture(h + 2 * margin, w + 2 * margin, seed)
    frames = []
    for t in range(n):
        m = np.float32([[1, 0, t * vx], [0, 1, t * vy]])
        big = cv2.warpAffine(scene, m, (scene.shape[1], scene.shape[0]), flags=cv2.INTER_CUBIC,
                             borderMode=cv2.BORDER_REFLECT)
        frames.append(np.ascontiguousarray(big[margin:margin + h, margin:margin + w]))
    return frames


def write_test_video(path: str | os.PathLike, frames: Iterable[np.ndarray] | None = None,
                     fps: fractions.Fraction | int = 24, audio_seconds: float | None = None,
                     audio_rate: int = 44100, codec: str | None = None, timecode: str | None = None,
                     pix_fmt: str = "yuv420p", options: dict[str, str] | None = None,
                     rotation: int | None = None) -> Path:
    """Encode ``frames`` (default: ``moving_pattern()``; any iterable, streamed) at ``fps`` with PyAV.

    ``audio_seconds``: add a 440 Hz stereo sine track of that length (AAC; Vorbis/Opus for
    .webm/.mkv if asked via ``codec``). Near-lossless video by default (crf 0 for libx264) so pixel
    checks stay meaningful; ``options`` replaces the encoder's options (e.g. a GOP structure),
    ``rotation`` sets the display-rotation side data (degrees).
    """
    path = Path(path)
    frames = iter(moving_pattern() if frames is None else frames)
    first = next(frames)
    rate = fractions.Fraction(fps)
    h, w = first.shape[:2]
    with av.open(os.fspath(path), "w") as out:
        vcodec = codec or ("libvpx-vp9" if path.suffix == ".webm" else "libx264")
        vs = out.add_stream(vcodec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        if options is not None:
            vs.options = options
        elif vcodec == "libx264":
            vs.options = {"crf": "0", "preset": "ultrafast"}
        if rotation is not None:
            vs.set_display_rotation(rotation)
        if timecode:
            vs.metadata["timecode"] = timecode
        aus = None
        if audio_seconds:
            acodec = "libopus" if path.suffix == ".webm" else "aac"
            aus = out.add_stream(acodec, rate=48000 if acodec == "libopus" else audio_rate)
            aus.layout = "stereo"
        for i, f in enumerate(itertools.chain([first], frames)):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            vf.time_base = 1 / rate
            for pkt in vs.encode(vf):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
        if aus is not None:
            sr = aus.codec_context.sample_rate
            n = int(round(audio_seconds * sr))
            t = np.arange(n) / sr
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, n, 1024):
                chunk = tone[start:start + 1024]
                af = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
                af.sample_rate = sr
                af.pts = start
                af.time_base = fractions.Fraction(1, sr)
                for pkt in aus.encode(af):
                    out.mux(pkt)
            for pkt in aus.encode(None):
                out.mux(pkt)
    return path


def write_sequence(folder: str | os.PathLike, frames: Sequence[np.ndarray], ext: str = ".png",
                   depth: int = 8, name: str = "{:04d}", start: int = 0) -> list[Path]:
    """Write ``frames`` (uint8 RGB) as ``folder/NNNN.ext`` (``name`` formats the frame number, which
    counts from ``start``).

    ``depth=16`` writes 16-bit PNG/TIFF (value * 257, so it reads back exactly); ``.exr`` writes
    float32 scene-linear values (the sRGB decode of the frame, so reading back gives the frame).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(frames):
        p = folder / (name.format(start + i) + ext)
        if ext == ".exr":
            import OpenEXR

            lin = srgb_to_linear(f)
            with OpenEXR.File({"type": OpenEXR.scanlineimage, "compression": OpenEXR.ZIP_COMPRESSION},
                              {"RGB": lin}) as exr:
                exr.write(os.fspath(p))
        else:
            img = f[:, :, ::-1]
            if depth == 16:
                img = img.astype(np.uint16) * 257
            params = [cv2.IMWRITE_JPEG_QUALITY, 98] if ext in (".jpg", ".jpeg") else []
            ok, buf = cv2.imencode(ext, np.ascontiguousarray(img), params)
            assert ok
            buf.tofile(p)
        paths.append(p)
    return paths


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> float32 linear (the inverse of the transfer curve ``rerender.media`` applies)."""
    x = rgb.astype(np.float64) / 255.0
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    return lin.astype(np.float32)


def decode_all(path: str | os.PathLike) -> tuple[list[np.ndarray], fractions.Fraction]:
    """Every frame of a video decoded independently of rerender.media (reference for tests)."""
    with av.open(os.fspath(path)) as c:
        s = c.streams.video[0]
        rate = s.average_rate
        return [f.to_ndarray(format="rgb24") for f in c.decode(s)], rate


def audio_duration(path: str | os.PathLike) -> float | None:
    """Seconds of decoded audio in a file (None without an audio track), counted from samples."""
    with av.open(os.fspath(path)) as c:
        if not c.streams.audio:
            return None
        s = c.streams.audio[0]
        n = 0
        rate = None
        for f in c.decode(s):
            n += f.samples
            rate = f.sample_rate
        return n / rate if rate else 0.0
