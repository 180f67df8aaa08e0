"""The OpenFX plugin bundle (``Rerender.ofx.bundle``, built from csrc/ofx): where it is, installing it
where compositors look, and what is installed.

The bundle is built by CMake (option ``RERENDER_OFX``) and installed inside the package beside the
native module. ``rerender ofx install`` copies it to a plugin folder and writes
``Contents/Resources/rerender-worker.json`` into the copy: the Python interpreter that runs the
worker (this one, ``sys.executable``) and the mark that rerender installed it. ``uninstall`` and a
re-install only ever remove a bundle that carries that mark. Installs are also listed in a small
per-user record so that ``rerender info`` finds bundles installed with ``--dir``.
"""
from __future__ import annotations

import datetime
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

from . import __version__
from .files import atomic_write_bytes

BUNDLE = "Rerender.ofx.bundle"
WORKER_FILE = "rerender-worker.json"  # in Contents/Resources of an installed bundle
INSTALLED_BY = "rerender ofx install"


def _arch() -> str:
    """The OpenFX architecture folder of this platform."""
    if sys.platform == "win32":
        return "Win64"
    if sys.platform == "darwin":
        return "MacOS"
    return "Linux-x86-64"


def bundle_path() -> Path | None:
    """The bundle built with this installation of rerender (inside the package, beside the native
    module), or None when it was not built (``RERENDER_OFX=OFF`` or an unsupported platform)."""
    roots = [Path(__file__).resolve().parent]
    spec = importlib.util.find_spec("rerender._native")
    if spec is not None and spec.origin:  # editable installs keep built files apart from the sources
        roots.insert(0, Path(spec.origin).resolve().parent)
    for root in roots:
        bundle = root / BUNDLE
        if (bundle / "Contents" / _arch() / "Rerender.ofx").is_file():
            return bundle
    return None


def system_plugin_dir() -> Path:
    """The OpenFX specification's default plugin folder of this OS."""
    if sys.platform == "win32":
        return Path(os.environ.get("CommonProgramFiles", r"C:\Program Files\Common Files")) / "OFX" / "Plugins"
    if sys.platform == "darwin":
        return Path("/Library/OFX/Plugins")
    return Path("/usr/OFX/Plugins")


def user_plugin_dir() -> Path:
    """A per-user plugin folder (hosts look there only once it is in OFX_PLUGIN_PATH)."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "OFX" / "Plugins"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "OFX" / "Plugins"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "OFX" / "Plugins"


def cache_root() -> Path:
    """Where the plugin keeps its jobs (the same rule as csrc/ofx/job.cpp): ``$RERENDER_OFX_CACHE``,
    else the OS per-user cache folder + ``rerender/ofx``."""
    if os.environ.get("RERENDER_OFX_CACHE"):
        return Path(os.environ["RERENDER_OFX_CACHE"])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home()))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rerender" / "ofx"


def _record_file() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home()))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "rerender" / "ofx-installs.json"


def _writable(folder: Path) -> bool:
    """True when ``folder`` exists and is writable, or can be created."""
    p = folder
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def default_dirs() -> list[tuple[Path, str]]:
    """Candidate plugin folders in the order ``install`` tries them, with why each is there."""
    dirs = [(Path(d), "OFX_PLUGIN_PATH") for d in os.environ.get("OFX_PLUGIN_PATH", "").split(os.pathsep) if d]
    return dirs + [(system_plugin_dir(), "the system OpenFX folder"), (user_plugin_dir(), "per-user folder")]


def read_marker(bundle: Path) -> dict | None:
    """The install record of a bundle rerender installed; None for any other folder."""
    try:
        data = json.loads((bundle / "Contents" / "Resources" / WORKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("installed_by") == INSTALLED_BY else None


def _load_record() -> list[str]:
    try:
        data = json.loads(_record_file().read_text(encoding="utf-8"))
        return [str(p) for p in data] if isinstance(data, list) else []
    except (OSError, ValueError):
        return []


def _save_record(paths: list[str]) -> None:
    try:
        atomic_write_bytes(_record_file(), json.dumps(sorted(set(paths)), indent=1).encode())
    except OSError:  # the record only helps `rerender info`; an install must not fail for it
        pass


def install(directory: str | os.PathLike | None = None, python: str | None = None) -> tuple[Path, str]:
    """Copy the bundle into ``directory`` (default: the first writable of :func:`default_dirs`) and
    record ``python`` (default ``sys.executable``) as its worker. Returns (installed bundle, where the
    folder came from). Raises ValueError when there is no bundle to install or the destination holds
    a bundle rerender did not install."""
    source = bundle_path()
    if source is None:
        raise ValueError("this rerender was built without the OpenFX bundle (CMake option RERENDER_OFX=OFF, "
                         "zlib missing, or no OpenFX architecture folder for this platform)")
    if directory is not None:
        target_dir, why = Path(directory).expanduser(), "--dir"
    else:
        target_dir, why = next(((d, w) for d, w in default_dirs() if _writable(d)), default_dirs()[-1])
    dest = target_dir / BUNDLE
    if dest.resolve() == source.resolve():
        raise ValueError(f"{dest}: this is the package's own bundle; choose another --dir")
    if (dest.exists() or dest.is_symlink()) and read_marker(dest) is None:
        raise ValueError(f"{dest}: a bundle that rerender did not install is there; it is left alone "
                         f"(remove it yourself, or install with --dir elsewhere)")
    target_dir.mkdir(parents=True, exist_ok=True)
    staging = target_dir / f".{BUNDLE}.rr-install-{os.getpid()}"
    old = target_dir / f".{BUNDLE}.rr-old-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(source, staging, symlinks=False)
        marker = {"installed_by": INSTALLED_BY, "version": __version__,
                  "python": str(Path(python or sys.executable).absolute()),
                  "installed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        (staging / "Contents" / "Resources").mkdir(parents=True, exist_ok=True)
        (staging / "Contents" / "Resources" / WORKER_FILE).write_text(json.dumps(marker, indent=1) + "\n",
                                                                     encoding="utf-8")
        if dest.exists():
            os.replace(dest, old)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    _save_record(_load_record() + [str(dest.resolve())])
    return dest, why


def uninstall(directory: str | os.PathLike | None = None) -> list[Path]:
    """Remove the bundle(s) rerender installed: the one in ``directory``, else every one it finds
    (:func:`installed`). Returns the removed bundles. Raises ValueError when ``directory`` holds no
    bundle or one rerender did not install."""
    if directory is not None:
        dest = Path(directory).expanduser() / BUNDLE
        if not dest.exists():
            raise ValueError(f"{dest}: no bundle there")
        if read_marker(dest) is None:
            raise ValueError(f"{dest}: this bundle was not installed by rerender; it is left alone")
        targets = [dest]
    else:
        targets = [Path(b["path"]) for b in installed()]
    for t in targets:
        shutil.rmtree(t)
    removed = {str(t.resolve()) for t in targets}
    _save_record([p for p in _load_record() if p not in removed and Path(p).exists()])
    return targets


def installed() -> list[dict]:
    """Bundles rerender installed (in the default folders and the install record): path, worker
    Python, version, and whether that Python still exists."""
    seen: dict[str, dict] = {}
    candidates = [d / BUNDLE for d, _ in default_dirs()] + [Path(p) for p in _load_record()]
    for bundle in candidates:
        marker = read_marker(bundle)
        key = str(bundle.resolve()) if bundle.exists() else str(bundle)
        if marker is None or key in seen:
            continue
        python = str(marker.get("python", ""))
        seen[key] = {"path": key, "version": marker.get("version"), "python": python,
                     "python_exists": bool(python) and os.access(python, os.X_OK)}
    return list(seen.values())


def report() -> dict:
    """What ``rerender info`` says about the plugin."""
    built = bundle_path()
    return {"bundle": str(built) if built else None, "installed": installed(),
            "python_override": os.environ.get("RERENDER_OFX_PYTHON"), "cache": str(cache_root())}
