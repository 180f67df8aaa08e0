"""What the OFX tests share: the bundle (or a skip when it was not built), real-footage shots
written both as the host's clips and as the float EXR plates and keys ``rerender propagate`` reads,
the CLI's reference output, and the child-process scenario runner (:mod:`.run`).
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parents[1]


def host_ready() -> None:
    """Skip when the test host cannot be built here (its variadic functions need a C compiler)."""
    from .host import varargs_library

    try:
        varargs_library()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"the OFX test host cannot be built: {e}")


def bundle() -> Path:
    """The built bundle (``$RERENDER_OFX_TEST_BUNDLE`` if set, else the package's own build), or skip:
    a platform or build without it has nothing to test here."""
    host_ready()
    given = os.environ.get("RERENDER_OFX_TEST_BUNDLE")
    if given:
        assert Path(given).is_dir(), f"RERENDER_OFX_TEST_BUNDLE={given} is not a folder"
        return Path(given)
    try:
        import rerender.ofx as rofx
    except ImportError as e:
        pytest.skip(f"rerender.ofx is not importable ({e})")
    path = rofx.bundle_path()
    if path is None:
        pytest.skip("the OFX bundle was not built (RERENDER_OFX off or no compiler support on this platform)")
    from .host import bundle_binary

    try:
        bundle_binary(path)
    except (FileNotFoundError, RuntimeError) as e:
        pytest.skip(f"no OFX binary for this machine in {path}: {e}")
    return Path(path)


# ---- footage --------------------------------------------------------------------------------


@dataclass
class Shot:
    """A shot as both sides see it: plates (float32 scene-linear, top row first) by host frame
    number, the key times, the Keys clip (the painted keys at the key times, plates elsewhere), and
    the same written as EXR sequences for the CLI."""

    root: Path
    first: int
    plates: np.ndarray          # N x H x W x 3 float32
    keys_clip: np.ndarray       # N x H x W x 3 float32
    key_times: list[int]
    display: np.ndarray | None = None       # the same as 8-bit display values (the decoded video, sRGB)
    display_keys: np.ndarray | None = None

    @property
    def frames(self) -> list[int]:
        return list(range(self.first, self.first + len(self.plates)))

    def clip_spec(self, name: str, stack: np.ndarray | None = None) -> dict:
        """The run spec of a clip: ``stack`` (default: the plates for "Source", else the Keys clip)."""
        if stack is None:
            stack = self.plates if name == "Source" else self.keys_clip
        path = self.root / f"clip-{name}-{stack.shape[1]}x{stack.shape[2]}-{stack.dtype}.npy"
        np.save(path, stack)
        return {"npy": str(path), "first": self.first, "fps": 24.0}


def write_exr(path: Path, rgb: np.ndarray) -> None:
    import OpenEXR

    with OpenEXR.File({"type": OpenEXR.scanlineimage, "compression": OpenEXR.ZIP_COMPRESSION},
                      {"RGB": np.ascontiguousarray(rgb, dtype=np.float32)}) as exr:
        exr.write(os.fspath(path))


def read_exr(path: Path) -> np.ndarray:
    """An EXR's RGB(A) as float32 H x W x C (read with OpenEXR, not through rerender)."""
    import OpenEXR

    with OpenEXR.File(os.fspath(path)) as exr:
        ch = exr.channels()
        if "RGBA" in ch:
            return np.asarray(ch["RGBA"].pixels, dtype=np.float32)
        if "RGB" in ch:
            return np.asarray(ch["RGB"].pixels, dtype=np.float32)
        return np.stack([np.asarray(ch[c].pixels, dtype=np.float32) for c in "RGBA" if c in ch], axis=-1)


def real_shot(root: Path, n: int, key_offsets: list[int], first: int = 1001, clip: str = "carphone") -> Shot:
    """``n`` frames of a real clip (tests/_footage.py) as float plates, with keys painted by a fixed
    colour transform (tests/_stylised_clip.py) at ``first + key_offsets``; skips when the footage
    cannot be fetched."""
    sys.path.insert(0, str(TESTS))
    import rerender.media as media
    from _clips import srgb_to_linear
    from _footage import FetchError, clip_path
    from _stylised_clip import stylise

    try:
        path = clip_path(clip)
    except FetchError as e:
        pytest.skip(str(e))
    frames = []
    for f in media.read_frames(path):
        frames.append(f)
        if len(frames) == n:
            break
    root.mkdir(parents=True, exist_ok=True)
    display = np.stack(frames)
    display_keys = display.copy()
    for k in key_offsets:
        display_keys[k] = stylise(frames[k])
    plates = np.stack([srgb_to_linear(f) for f in display])
    keys = np.stack([srgb_to_linear(f) for f in display_keys])
    (root / "plates").mkdir(exist_ok=True)
    (root / "keys").mkdir(exist_ok=True)
    for i, p in enumerate(plates):
        write_exr(root / "plates" / f"shot.{first + i}.exr", p)
    for k in key_offsets:
        write_exr(root / "keys" / f"shot.{first + k}.exr", keys[k])
    return Shot(root, first, plates, keys, [first + k for k in key_offsets], display, display_keys)


def srgb_decode(v: np.ndarray) -> np.ndarray:
    """Display values 0..1 -> linear with the sRGB transfer curve, in float32 arithmetic."""
    v = v.astype(np.float32)
    return np.where(v <= np.float32(0.04045), v / np.float32(12.92),
                    ((v + np.float32(0.055)) / np.float32(1.055)) ** np.float32(2.4)).astype(np.float32)


def srgb_encode(x: np.ndarray) -> np.ndarray:
    """Linear -> display values with the sRGB transfer curve, in float32 arithmetic."""
    x = x.astype(np.float32)
    return np.where(x <= np.float32(0.0031308), np.float32(12.92) * x,
                    np.float32(1.055) * np.maximum(x, np.float32(0)) ** (np.float32(1) / np.float32(2.4))
                    - np.float32(0.055)).astype(np.float32)


def rounds_to(got: np.ndarray, scaled: np.ndarray, tie: float = 1e-3) -> np.ndarray:
    """Where 8-bit ``got`` is ``scaled`` (0..255 floats) rounded to the nearest level; within ``tie``
    of a half level either neighbour counts (float arithmetic may land either side of it)."""
    scaled = np.clip(scaled.astype(np.float64), 0.0, 255.0)
    g = got.astype(np.float64)
    near_half = np.abs(scaled - np.floor(scaled) - 0.5) < tie
    return (g == np.floor(scaled + 0.5)) | (near_half & ((g == np.floor(scaled)) | (g == np.ceil(scaled))))


def cli_reference(shot: Shot, out: Path, *flags: str, plates: str | None = None,
                  keys: Path | None = None) -> dict[int, np.ndarray]:
    """``rerender propagate`` on the shot's EXR plates and keys (or ``plates`` pattern / ``keys``
    folder): {host frame: float32 H x W x 3}."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "rerender", "propagate", plates or str(shot.root / "plates" / "shot.%04d.exr"),
           "--keys", str(keys or shot.root / "keys"), "-o", str(out / "res.####.exr"), "--progress", "quiet", *flags]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{' '.join(cmd)} failed: {p.stderr[-2000:]}"
    return {f: read_exr(out / f"res.{f}.exr") for f in shot.frames}


# ---- scenarios in a child process -----------------------------------------------------------


@dataclass
class Outcome:
    returncode: int
    result: dict | None
    out: Path
    stderr: str

    def frame(self, step: int, time: int) -> np.ndarray | None:
        p = self.out / f"{step}_{time}.npy"
        return np.load(p) if p.exists() else None

    def messages(self, *types: str) -> list[dict]:
        return [m for m in self.result["messages"] if not types or m["type"] in types]


def run_scenario(spec: dict, out: Path, timeout: float = 300) -> Outcome:
    """Run :mod:`ofx_host.run` on ``spec`` in a child process; a crash gives ``result=None``."""
    out.mkdir(parents=True, exist_ok=True)
    spec_file = out / "spec.json"
    spec_file.write_text(json.dumps(spec))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    try:
        p = subprocess.run([sys.executable, "-m", "ofx_host.run", str(spec_file), str(out)], capture_output=True,
                           text=True, timeout=timeout, env=env, cwd=str(TESTS))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the host scenario hung (> {timeout} s): {(e.stderr or b'')[-2000:]!r}")
    res = out / "result.json"
    result = json.loads(res.read_text()) if p.returncode == 0 and res.exists() else None
    return Outcome(p.returncode, result, out, p.stderr)


def worker_env(cache: Path, python: str | os.PathLike | None = None) -> dict:
    return {"RERENDER_OFX_PYTHON": str(python or sys.executable), "RERENDER_OFX_CACHE": str(cache)}


def logging_python(path: Path, log: Path, extra: str = "") -> Path:
    """A wrapper interpreter for RERENDER_OFX_PYTHON that logs every start (its arguments) to
    ``log`` and runs this Python; ``extra`` is shell run before, with "$@" the worker's arguments."""
    path.write_text(f"""#!/bin/sh
echo "$$ $*" >> '{log}'
{extra}
exec '{sys.executable}' "$@"
""")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def worker_starts(log: Path) -> list[str]:
    """The logged starts that ran a propagation job (not the interpreter probes, if any)."""
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if " propagate" in line]
