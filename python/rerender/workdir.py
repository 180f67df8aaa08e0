"""A job's work directory: its layout, the marker that proves rerender owns it, and its lock.

Layout (every file is written atomically, see :mod:`rerender.files`)::

    WORK/.rerender-workdir        marker: written when rerender creates (or adopts an empty) folder
    WORK/.lock                    held while a job runs: {"pid", "host", "started"}
    WORK/manifest.json            fingerprints of inputs and options, stage stamps
    WORK/frames/NNNN.png          decoded input frames at the working size (NNNN = input index);
                                  NNNN.exr (float32, 0..255 working scale) for 16-bit and float plates
    WORK/mattes/NNNN.png          the matte at the working size (with --matte)
    WORK/flow/METHOD/I_J.npz      flows between frames, computed when needed (rerender.flow.FlowCache)
    WORK/keys/NNNN.png            key frames at the working size (NNNN.exr: a key painted at high depth)
    WORK/segments/A-B/            per-segment candidates, error maps and selection masks (dropped
                                  when the segment is done, unless the job keeps intermediates)
    WORK/out/NNNN.png             final frames in the working format (.exr like frames/)
    WORK/**/.NAME.b2              beside each entry: its size and BLAKE2b digest, recorded when it is
                                  written and checked when it is read (rerender.files.record_entry);
                                  an entry that does not match is recomputed

Rerender deletes only what it can prove it wrote: it clears its own sub-folders only inside a
folder that carries the marker, and it refuses a folder that is not empty and has no marker (a
user's project folder given as ``--work-dir`` by mistake). The lock keeps a second job off a work
directory that a running job uses; a lock left by a process that is gone (on this machine) is
taken over. A job refused after its work directory was created (a bad key found once the lock is
held) removes the folder again when this run created it and nothing but bookkeeping is in it.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import JobError
from .files import (DamagedEntry, check_entry, entry_ok, frame_name, is_own_temporary, read_json, record_entry,
                    remove_stale_temporaries, write_json)

MANIFEST_VERSION = 1
MARKER = ".rerender-workdir"
LOCK = ".lock"
MANAGED = ("frames", "mattes", "flow", "keys", "segments", "out")
OWN_FILES = (MARKER, LOCK, "manifest.json", "keyplan.json")  # written at the top of the work directory

FRAME_MEMORY_BYTES = 256 << 20  # decoded input frames a work directory keeps in memory (at most cache_budget())

_held: dict[str, int] = {}  # real path -> nesting depth of this process's lock
_held_lock = threading.Lock()


class WorkDir:
    """Paths, manifest and readers of a job's work directory (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, flow_method: str = "dis", *, deep: bool = False,
                 matted: bool = False):
        self.root = Path(root)
        self.flow_method = flow_method
        # deep: frames of a 16-bit or float plate, kept as float32 on the native core's 0..255 scale
        # (EXR) so that nothing is quantised to 8 bits between decoding and the output
        self.deep = deep
        self.matted = matted
        self.ext = ".exr" if deep else ".png"
        self.frames = self.root / "frames"
        self.mattes = self.root / "mattes"
        self.flow_dir = self.root / "flow"
        self.keys = self.root / "keys"
        self.segments = self.root / "segments"
        self.out = self.root / "out"
        self.manifest_path = self.root / "manifest.json"
        self._flow_cache = None
        self._frames = None  # decoded input frames kept in memory (see frame())
        self._created: Path | None = None  # the topmost folder this run created for the work directory

    # -------------------------------------------------------------------------------- ownership

    def claim(self) -> None:
        """Create the work directory, or check that it is one of ours; raises :class:`JobError`
        for an existing folder that holds files and no marker."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise JobError(f"{root}: the work directory is a file, not a folder")
        marker = root / MARKER
        if marker.is_file():
            return
        # another rerender process creating the same folder right now may have its marker's
        # temporary there: that folder is being claimed by rerender, not a user's
        if root.is_dir() and any(not is_own_temporary(p.name) for p in root.iterdir()):
            raise JobError(f"{root}: this folder is not empty and was not created by rerender (it has no "
                           f"{MARKER} marker); rerender would manage (and clear) sub-folders in it, so choose "
                           "a new or empty --work-dir")
        created = _topmost_missing(root)
        root.mkdir(parents=True, exist_ok=True)
        write_json(marker, {"created_by": "rerender", "version": MANIFEST_VERSION})
        if created is not None:
            self._created = created

    def is_claimed(self) -> bool:
        """Whether the folder carries rerender's marker (what it holds may be trusted as ours)."""
        return (self.root / MARKER).is_file()

    def clear(self, *names: str) -> None:
        """Delete managed sub-folders (``frames``, ``flow``, ...) of a claimed work directory."""
        if not (self.root / MARKER).is_file():
            raise JobError(f"{self.root}: refusing to clear a folder without the {MARKER} marker")
        for name in names:
            if name not in MANAGED:
                raise ValueError(f"clear: {name!r} is not a managed sub-folder ({', '.join(MANAGED)})")
            shutil.rmtree(self.root / name, ignore_errors=True)
        if "frames" in names:
            self._frames = None  # the decoded frames kept in memory are gone with their files
        if {"frames", "flow"} & set(names):
            self._flow_cache = None  # it keeps flows and grey frames in memory: they are gone

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the work directory's lock for the block (re-entrant within one process).

        A second job (another process, here or on a machine sharing the folder) is refused with a
        message naming the holder. A lock whose process is gone on this machine is stale and is
        taken over; temporaries left by killed writers are removed at the same time.
        """
        key = str(self.root.resolve())
        with _held_lock:
            if key not in _held:
                self._created = None  # this job's own claim says whether it created the folder
        self.claim()
        with _held_lock:
            depth = _held.get(key, 0)
            if depth == 0:
                self._acquire()
            _held[key] = depth + 1
        refused = False
        try:
            yield
        except (ValueError, OSError):  # a user error (rerender.errors): the job was refused
            refused = True
            raise
        finally:
            with _held_lock:
                _held[key] -= 1
                last = _held[key] == 0
                if last:
                    del _held[key]
                    self._release()
            if refused and last:
                self._remove_if_unused()

    def _remove_if_unused(self) -> None:
        """After a refused job: remove the work directory if this run created it and nothing but
        its bookkeeping (marker, manifest, empty folders) is in it -- a refused job leaves nothing
        behind. A folder an earlier run made, or one holding any result, stays."""
        created = self._created
        if created is None:
            return
        for folder, _, files in os.walk(self.root):
            if any(Path(folder) != self.root or name not in (MARKER, "manifest.json", LOCK) for name in files):
                return
        shutil.rmtree(self.root, ignore_errors=True)
        folder = Path(os.path.abspath(self.root)).parent
        while created in folder.parents or folder == created:  # the parents this run created, if empty
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent
        self._created = None

    def _acquire(self) -> None:
        path = self.root / LOCK
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(3):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = read_json(path)
                if holder is None:  # being written right now, or garbage: look again
                    time.sleep(0.05)
                    holder = read_json(path)
                if holder is not None and not _stale(holder):
                    raise JobError(f"{self.root}: another rerender job is using this work directory (pid "
                                   f"{holder.get('pid')} on {holder.get('host')}); wait for it to finish, or "
                                   f"use another --work-dir. If no such job runs, delete {path}")
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            # a crashed run may have left temporaries; no other writer can be active now
            remove_stale_temporaries(self.root, recursive=True)
            return
        raise JobError(f"{self.root}: could not take the work directory's lock {path}")

    def _release(self) -> None:
        path = self.root / LOCK
        holder = read_json(path)
        if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            path.unlink(missing_ok=True)

    # -------------------------------------------------------------------------------- contents

    def frame_path(self, i: int) -> Path:
        return self.frames / f"{frame_name(i)}{self.ext}"

    def key_path(self, i: int) -> Path:
        """Key frame i: ``NNNN.png`` (8-bit, e.g. rendered by diffusion) or, when only that exists,
        ``NNNN.exr`` (a key painted at high depth, in the working format)."""
        png = self.keys / f"{frame_name(i)}.png"
        exr = png.with_suffix(".exr")
        return exr if self.deep and not png.exists() and exr.exists() else png

    def out_path(self, i: int) -> Path:
        return self.out / f"{frame_name(i)}{self.ext}"

    def matte_path(self, i: int) -> Path:
        return self.mattes / f"{frame_name(i)}.png"

    def frame(self, i: int) -> np.ndarray:
        """Input frame i in the working format: uint8 RGB, or float32 (0..255) for a deep job
        (read-only). Every pass step, flow and guide of a run reads it: it is decoded once per
        process and kept in memory (up to a budget; past it the file is read and checked again)."""
        kept = self._frame_memory.get(i)
        return kept if kept is not None else self._frame_memory.put(i, self._working(self.frame_path(i)))

    def write_frame(self, i: int, img: np.ndarray) -> None:
        """Store input frame i (working format) in ``frames/`` and keep it in memory."""
        self.write_working(self.frame_path(i), img)
        self._frame_memory.put(i, img.copy())

    def write_frame_bytes(self, i: int, img: np.ndarray, data: bytes) -> None:
        """Store input frame i as ``data``, PNG bytes that decode to ``img`` (8-bit jobs), and keep
        ``img`` in memory."""
        from .files import write_bytes_if_changed

        write_bytes_if_changed(self.frame_path(i), data)
        record_entry(self.frame_path(i), data)
        self._frame_memory.put(i, img.copy())

    @property
    def _frame_memory(self):
        if self._frames is None:
            from .memory import cache_budget
            from .recent import Recent

            self._frames = Recent(min(FRAME_MEMORY_BYTES, cache_budget()))
        return self._frames

    def frame8(self, i: int) -> np.ndarray:
        """Input frame i as uint8 RGB (what diffusion and shot detection see)."""
        from .media import from_working

        return from_working(self.frame(i), "uint8")

    def key(self, i: int) -> np.ndarray:
        """Key frame i in the working format."""
        return self._working(self.key_path(i))

    def out_frame(self, i: int) -> np.ndarray:
        return self._working(self.out_path(i))

    def matte(self, i: int) -> np.ndarray | None:
        """The matte of frame i (uint8, 255 = restyle) when the job has one, else None."""
        if not self.matted:
            return None
        from .media import MediaError, read_grey

        path = self.matte_path(i)
        check_entry(path)
        try:
            return read_grey(path)
        except MediaError as e:
            raise DamagedEntry(path, f"cannot be decoded ({e})") from None

    def write_out(self, i: int, img: np.ndarray) -> None:
        """Final frame i in the working format (a PNG whose bytes are unchanged is left alone)."""
        self.write_working(self.out_path(i), img)

    def out_ok(self, i: int) -> bool:
        """Whether output frame i is there and is what rerender wrote (else it is recomputed)."""
        return entry_ok(self.out_path(i))

    def write_working(self, path: Path, img: np.ndarray) -> None:
        """An entry in the working format, its digest recorded (see :func:`rerender.files.record_entry`)."""
        from .media import encode_png, from_working, write_image
        from .files import write_bytes_if_changed

        if path.suffix == ".png":
            data = encode_png(from_working(img, "uint8"))
            write_bytes_if_changed(path, data)
            record_entry(path, data)
        else:
            write_image(path, np.ascontiguousarray(img, dtype=np.float32), if_changed=True)
            record_entry(path)

    def _working(self, path: Path) -> np.ndarray:
        """An entry in the working format, checked against its recorded digest: :class:`DamagedEntry`
        when it is not what rerender wrote or cannot be decoded."""
        from .media import MediaError, read_image, read_plate

        check_entry(path)
        try:
            if not self.deep:
                return read_image(path)
            rgb = read_plate(path)[0]
        except MediaError as e:
            raise DamagedEntry(path, f"cannot be decoded ({e})") from None
        return rgb.astype(np.float32) if rgb.dtype != np.float32 else rgb

    @property
    def flow_cache(self):
        """The cache of ``flow_method``'s flows in this work directory (frames read from it)."""
        if self._flow_cache is None:
            from .flow import FlowCache

            self._flow_cache = FlowCache(self.flow_dir, self.flow_method, frames=self.frame)
        return self._flow_cache

    def flow(self, a: int, b: int) -> np.ndarray:
        """flow_{a->b} (float32 H x W x 2), from the flow cache (computed if missing)."""
        return np.ascontiguousarray(self.flow_cache.get(a, b))

    def size(self) -> int:
        """Bytes of all files in the work directory (a file hard-linked twice, such as a key frame
        and its output, counts once)."""
        total, seen = 0, set()
        for folder, _, files in os.walk(self.root):
            for name in files:
                try:
                    st = os.lstat(os.path.join(folder, name))
                except FileNotFoundError:  # removed while we looked
                    continue
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
        return total

    def manifest(self) -> dict:
        """The manifest ({} before the first one); a damaged one is refused (:class:`JobError`) with the
        fix, rather than guessed at."""
        path = self.manifest_path
        try:
            m = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise _damaged_manifest(path, f"not readable JSON: {e}") from None
        if not isinstance(m, dict):
            raise _damaged_manifest(path, f"expected a JSON object, got {type(m).__name__}")
        for key in ("frames", "mattes", "flow", "cuts", "outputs"):
            if m.get(key) is not None and not isinstance(m[key], dict):
                raise _damaged_manifest(path, f"{key!r} should be an object, got {type(m[key]).__name__}")
        return m

    def update_manifest(self, **entries) -> None:
        m = self.manifest()
        m.update(entries)
        m["version"] = MANIFEST_VERSION
        write_json(self.manifest_path, m)


def _damaged_manifest(path: Path, why: str) -> JobError:
    return JobError(f"{path}: the work directory's manifest is damaged ({why}); delete {path} (or the whole work "
                    "directory) to start over")


def _stale(holder: dict) -> bool:
    """A lock is stale when its process is gone; only checkable for this machine's processes."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder.get("pid")), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, TypeError, ValueError):
        return False
    return False


def _topmost_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet, or None."""
    path = Path(os.path.abspath(path))
    if path.exists():
        return None
    while not path.parent.exists() and path.parent != path:
        path = path.parent
    return path


def default_work_dir(output: str | os.PathLike) -> Path:
    """Where a job keeps its intermediate files unless told otherwise: ``OUT.work`` beside OUT; for a
    pattern output ``out/shot.####.exr``, ``out/shot.work``."""
    from .media import parse_output_pattern

    pattern = parse_output_pattern(output)
    if pattern is not None:
        folder, prefix = pattern[0], pattern[1]
        return folder / f"{prefix.rstrip('._- ') or 'rerender'}.work"
    out = Path(output)
    return out.with_name(out.name + ".work")
