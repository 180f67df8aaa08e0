"""A synthetic clip whose stylisation is known exactly (shared helper, owned by propagation).

The input is ``_clips.moving_pattern`` (a smooth random texture translating by a known velocity); the
"style" is a fixed per-pixel colour transform of it, so the correctly stylised version of *every*
frame is known: a propagation that follows the motion must reproduce ``stylise(frame_i)``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from _clips import moving_pattern, write_sequence

H, W, N = 64, 96, 31
VELOCITY = (1.0, 0.5)


def stylise(frame: np.ndarray) -> np.ndarray:
    """A fixed, non-linear per-pixel colour transform (channels permuted, inverted, gamma)."""
    x = frame.astype(np.float32) / 255
    y = np.stack([x[..., 2] ** 0.5, 1 - x[..., 0], x[..., 1] ** 2], -1)
    return (y * 255 + 0.5).astype(np.uint8)


def clip(n: int = N, h: int = H, w: int = W, seed: int = 3) -> list[np.ndarray]:
    return moving_pattern(n, h, w, VELOCITY, seed=seed)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def write_clip_and_keys(root: Path, frames: list[np.ndarray], keys=(0, 10, 20, 30),
                        input_name: str = "input", keys_name: str = "keys") -> tuple[Path, Path]:
    """Write ``frames`` as a PNG sequence and the stylised key frames; returns (input dir, keys dir)."""
    import rerender.media as media

    inp = root / input_name
    write_sequence(inp, frames)
    kdir = root / keys_name
    kdir.mkdir(parents=True, exist_ok=True)
    for k in keys:
        media.write_image(kdir / f"{k:04d}.png", stylise(frames[k]))
    return inp, kdir


FAST_OPTIONS = "search_vote_iters: 2\npatchmatch_iters: 1\n"


def write_fast_config(folder) -> Path:
    """``FOLDER/fast.yaml``: an option file with the fewest iterations that still propagate, for
    tests that run the command line (a few seconds a job)."""
    path = Path(folder) / "fast.yaml"
    path.write_text(FAST_OPTIONS)
    return path


def run_propagate_cli(folder, inp, keys, out, *extra) -> int:
    """``rerender propagate INP --keys KEYS -o OUT`` with the fast option file (in ``folder``), quiet;
    returns the exit code."""
    from rerender.cli import main

    return main(["propagate", str(inp), "--keys", str(keys), "-o", str(out), "--progress", "quiet",
                 "--config", str(write_fast_config(folder)), *extra])


def fast_config(**changes):
    """Reference guides and patch size, fewer iterations: keeps the tests at a few seconds."""
    from rerender.passes import PropagationConfig

    base = dict(search_vote_iters=3, patchmatch_iters=2)
    base.update(changes)
    return PropagationConfig(**base)
