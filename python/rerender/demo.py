"""``rerender demo``: the whole propagation job on a built-in clip — no downloads, no model weights.

The clip is generated: a slow camera pan and zoom over a photograph bundled with scikit-image
(``coffee``), with a second photograph (``chelsea``, the cat) cut out as a disc and sliding across the
foreground faster than the background — two depth layers, so the flow has parallax and occlusions.
Every ``key_every``-th frame is stylised by a classical OpenCV filter (edge-preserving
``cv2.stylization`` plus a warm colour grade), standing in for diffusion-rendered key frames; the job
then propagates that look to every frame.

Writes to OUT: ``input/`` (the generated frames), ``keys/`` (the stylised key frames), ``frames/``
(the result, one PNG per frame), ``result.mp4``, ``preview.mp4`` (input | result side by side),
``contact_sheet.png`` (input above result for a few frames) and ``work/`` (the job's work directory).
OUT must be a new or empty folder, or one an earlier demo made (its ``.rerender-demo`` marker): the
demo never writes into a user's folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from . import media
from .files import frame_name, write_json
from .pipeline import JobResult, propagate
from .progress import QUIET, Progress
from .passes import PropagationConfig

DEMO_SIZE = (256, 384)  # (h, w)
DEMO_FPS = 24
MAX_DEMO_FRAMES = 1000
DEMO_MARKER = ".rerender-demo"  # in every folder the demo writes: a rerun may replace its files
DEMO_FILES = {DEMO_MARKER, "input", "keys", "frames", "work", "result.mp4", "preview.mp4", "contact_sheet.png"}


def _scene_layers() -> tuple[np.ndarray, np.ndarray]:
    try:
        from skimage import data
    except ImportError as e:  # scikit-image is a dependency; say what is missing if it is not there
        raise OSError("the demo needs scikit-image (pip install scikit-image) for its built-in photographs") from e
    return np.ascontiguousarray(data.coffee()), np.ascontiguousarray(data.chelsea())


def _smooth(t: float) -> float:
    return 0.5 - 0.5 * np.cos(np.pi * t)  # ease in and out: no jerk at the ends


def demo_clip(n: int = 31, size: tuple[int, int] = DEMO_SIZE) -> list[np.ndarray]:
    """The demo's input frames: uint8 RGB, ``size`` = (h, w)."""
    if not 2 <= n <= MAX_DEMO_FRAMES:  # the clip is held in memory (about 0.3 MB a frame)
        raise ValueError(f"frames: the demo clip has 2 to {MAX_DEMO_FRAMES} frames, got {n}")
    h, w = size
    background, cat = _scene_layers()
    bh, bw = background.shape[:2]
    # foreground: a disc cut from the cat photo (its face), with a soft edge
    r = int(0.3 * h)
    face = cv2.resize(cat[40:260, 120:340], (2 * r, 2 * r), interpolation=cv2.INTER_AREA).astype(np.float32)
    yy, xx = np.mgrid[0:2 * r, 0:2 * r].astype(np.float32) - (r - 0.5)
    alpha = np.clip(r - np.sqrt(xx ** 2 + yy ** 2), 0, 1.5)[:, :, None] / 1.5
    frames = []
    for t in range(n):
        s = _smooth(t / (n - 1))
        # background camera: zoom 1.0 -> 1.15 and pan right/down, as an affine map frame -> photo
        zoom = 1.0 + 0.15 * s
        scale = min(bh / h, bw / w) * 0.8 / zoom
        cx = bw * (0.40 + 0.15 * s)
        cy = bh * (0.50 + 0.05 * s)
        m = np.float32([[scale, 0, cx - scale * w / 2], [0, scale, cy - scale * h / 2]])
        frame = cv2.warpAffine(background, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        # foreground disc slides left to right, faster than the background (parallax)
        fx = int(round(w * (0.15 + 0.6 * s))) - r
        fy = int(round(h * (0.55 - 0.1 * np.sin(np.pi * s)))) - r
        x0, y0, x1, y1 = max(fx, 0), max(fy, 0), min(fx + 2 * r, w), min(fy + 2 * r, h)
        if x1 > x0 and y1 > y0:
            a = alpha[y0 - fy:y1 - fy, x0 - fx:x1 - fx]
            f = face[y0 - fy:y1 - fy, x0 - fx:x1 - fx]
            frame[y0:y1, x0:x1] = a * f + (1 - a) * frame[y0:y1, x0:x1]
        frames.append(np.ascontiguousarray(np.clip(frame + 0.5, 0, 255).astype(np.uint8)))
    return frames


def stylise(frame: np.ndarray) -> np.ndarray:
    """A classical 'painted' look: OpenCV's edge-preserving stylisation plus a warm colour grade."""
    bgr = np.ascontiguousarray(frame[:, :, ::-1])
    painted = cv2.stylization(bgr, sigma_s=40, sigma_r=0.35)[:, :, ::-1].astype(np.float32) / 255.0
    # warm grade: lift reds, cool the shadows a little, raise saturation
    grey = painted.mean(axis=2, keepdims=True)
    sat = np.clip(grey + 1.4 * (painted - grey), 0.0, 1.0)
    graded = np.stack([sat[..., 0] ** 0.85, sat[..., 1] ** 1.0, sat[..., 2] ** 1.2 * 0.9 + 0.05], axis=-1)
    return np.ascontiguousarray(np.clip(graded * 255 + 0.5, 0, 255).astype(np.uint8))


def contact_sheet(rows: list[list[np.ndarray]], pad: int = 4) -> np.ndarray:
    """Grid image: ``rows`` of equally sized uint8 RGB frames separated by white gaps."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    sheet = np.full((len(rows) * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            sheet[y:y + h, x:x + w] = img
    return sheet


def _claim_folder(output: str | os.PathLike) -> Path:
    """The demo's output folder, checked before anything is written: a new or empty folder, or one
    an earlier demo made (rerunning resumes). Any other folder is a user's, and the demo would
    overwrite files in it, so it is refused."""
    if not os.fspath(output).strip():
        raise ValueError("-o: the output path is empty; name a new folder (e.g. -o rerender-demo)")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: the demo writes a folder, but a file of that name exists")
    if out.is_dir() and any(out.iterdir()) and not _made_by_demo(out):
        raise ValueError(f"{out}: this folder is not empty and was not made by `rerender demo` (it has no "
                         f"{DEMO_MARKER} marker); the demo would overwrite files in it, so choose a new folder, "
                         f"e.g. -o {out / 'rerender-demo'}")
    return out


def _made_by_demo(folder: Path) -> bool:
    """The demo's marker, or (a demo made before the marker existed) nothing but the demo's own
    files with rerender's work directory in ``work/``."""
    from .workdir import MARKER

    if (folder / DEMO_MARKER).is_file():
        return True
    return (folder / "work" / MARKER).is_file() and all(p.name in DEMO_FILES for p in folder.iterdir())


def run_demo(output: str | os.PathLike = "rerender-demo", frames: int = 31, key_every: int = 10,
             progress: Progress | None = None, config: PropagationConfig | None = None,
             size: tuple[int, int] = DEMO_SIZE) -> JobResult:
    """Generate the clip and key frames, run the propagation job and write the previews (see module doc).

    ``size``: (h, w) of the generated clip; ``config``: propagation options (default: the reference ones).
    """
    progress = progress or QUIET
    if key_every < 1:
        raise ValueError(f"key_every: must be >= 1, got {key_every}")
    out = _claim_folder(output)
    clip = demo_clip(frames, size)
    write_json(out / DEMO_MARKER, {"created_by": "rerender demo"})
    progress.log(f"demo: {len(clip)} frames of {clip[0].shape[1]}x{clip[0].shape[0]}, key frames every "
                 f"{key_every} frames, writing to {out}")
    keys = list(range(0, len(clip), key_every))
    if keys[-1] != len(clip) - 1 and len(clip) - 1 - keys[-1] > key_every // 2:
        keys.append(len(clip) - 1)  # end on a key so the last frames are not extrapolated far
    for i, f in enumerate(clip):
        path = out / "input" / f"{frame_name(i)}.png"
        if not path.exists() or not np.array_equal(media.read_image(path), f):
            media.write_image(path, f)
    for k in keys:
        path = out / "keys" / f"{frame_name(k)}.png"
        styled = stylise(clip[k])
        if not path.exists() or not np.array_equal(media.read_image(path), styled):
            media.write_image(path, styled)
    result = propagate(out / "input", out / "keys", out / "frames", work_dir=out / "work", config=config,
                       progress=progress)
    result_frames = [media.read_image(out / "frames" / f"{frame_name(i)}.png") for i in range(len(clip))]
    media.write_video(result_frames, out / "result.mp4", DEMO_FPS)
    media.write_video((np.concatenate([a, b], axis=1) for a, b in zip(clip, result_frames)),
                    out / "preview.mp4", DEMO_FPS)
    picks = np.linspace(0, len(clip) - 1, 6).round().astype(int)
    media.write_image(out / "contact_sheet.png",
                    contact_sheet([[clip[i] for i in picks], [result_frames[i] for i in picks]]))
    return result
