"""Files that rerender writes: atomic writes, digests, frame names, and its own temporaries.

Every writer of the package goes through :func:`atomic_path` / :func:`atomic_write_bytes`: data is
written to a temporary file beside the target and moved into place with ``os.replace``, so a killed
job leaves either the old file or the new one, never half of one. Temporaries carry the writing
process's host and pid in their name (``.NAME.rr-HOST-PID-XXXX.tmp[.ext]``), which lets a later run
remove the ones a killed process left behind (:func:`remove_stale_temporaries`) without ever
touching a file that a living process is writing (here or on another machine sharing the folder),
or that rerender did not create.

Files are created with the user's umask (``mkstemp`` alone would make them 0600, unreadable by the
rest of a render farm).
"""
from __future__ import annotations

import contextlib
import errno
import filecmp
import hashlib
import io
import json
import os
import re
import socket
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

# host names reduced to a safe token: the temporary's name must stay a plain file name
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"
_TEMP_RX = re.compile(r"\A\..+\.rr-([A-Za-z0-9]+)-(\d+)-[A-Za-z0-9_]+\.tmp(\.[A-Za-z0-9]+)?\Z")


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()

# a write that fails for lack of room: the disk or quota is full, or the file is over the size limit
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class NoRoomError(OSError):
    """A file could not be written for lack of space (disk or quota full, file size limit); the
    message names the file and the cause, and the partial file is gone."""

    def __str__(self) -> str:
        return f"{self.filename}: cannot write this file: {self.strerror}; free some space (or write elsewhere) and rerun"


def no_room(path: str | os.PathLike, code: int = errno.ENOSPC) -> NoRoomError:
    return NoRoomError(code, os.strerror(code), os.fspath(path))


def write_all(path: str | os.PathLike, data) -> None:
    """Write the bytes of ``data`` (bytes or a buffer) to ``path``: the one place rerender's files get
    their bytes (``ndarray.tofile`` reports a full disk only as "N requested and M written")."""
    with open(path, "wb") as f:
        f.write(memoryview(data).cast("B"))


# ------------------------------------------------------------------------------------------------
# names and digests


def frame_name(index: int) -> str:
    """The stem of frame ``index``'s file in the work directory and in a plain output folder."""
    return f"{int(index):04d}"


def digest(obj) -> str:
    """Short stable hash of a JSON-serialisable value (fingerprints of options and inputs)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def file_digest(paths: Iterable[Path]) -> str:
    """Hash of the names and bytes of ``paths`` (in order)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode("utf-8", "surrogateescape"))
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()[:20]


def content_digest(path: str | os.PathLike) -> str | None:
    """``SIZE:HASH`` of a file's bytes (BLAKE2b: fast enough to check every file rerender reads
    back), or None when it cannot be read."""
    h = hashlib.blake2b(digest_size=16)
    size = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
    except OSError:
        return None
    return f"{size}:{h.hexdigest()}"


def bytes_digest(data) -> str:
    """``SIZE:HASH`` of bytes, as :func:`content_digest` gives for a file holding them."""
    view = memoryview(data).cast("B")
    return f"{view.nbytes}:{hashlib.blake2b(view, digest_size=16).hexdigest()}"


# ------------------------------------------------------------------------------------------------
# work-directory entries: a digest recorded beside each file when it is written, checked when read


class DamagedEntry(ValueError):
    """A work-directory entry is unreadable or not what rerender wrote: a cache miss, recomputed."""

    def __init__(self, path: str | os.PathLike, why: str):
        # (seen only when found mid-job: a rerun checks every entry first and recomputes this one)
        super().__init__(f"{path}: {why}; rerun the same command to recompute it")
        self.path = Path(path)


_reported: set[str] = set()


def report_damaged(path: str | os.PathLike) -> None:
    """Say once per file (on stderr) that a damaged entry is being recomputed."""
    import sys

    key = os.fspath(path)
    if key not in _reported:
        _reported.add(key)
        print(f"rerender: {key}: unreadable or changed since rerender wrote it; recomputing it", file=sys.stderr)


def _digest_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_name(f".{p.name}.b2")


# entries whose digest this process has written or checked, by path: (device, inode, size, mtime) then.
# A file read again unchanged is not hashed again; one replaced or rewritten since has another stat.
_checked: dict[str, tuple[int, int, int, int]] = {}


def _stat_key(path: str | os.PathLike) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def record_entry(path: str | os.PathLike, data=None) -> None:
    """Record the size and digest of the entry at ``path`` (of ``data``, its bytes, when the writer
    has them; else read back). Written after the entry: a job killed between the two leaves a
    stale or missing record, so the entry is checked by decoding or recomputed, never trusted wrongly."""
    d = bytes_digest(data) if data is not None else content_digest(path)
    if d is not None:
        write_bytes_if_changed(_digest_path(path), d.encode())
        _checked[os.fspath(path)] = _stat_key(path)


def check_entry(path: str | os.PathLike, data=None) -> None:
    """Raise :class:`DamagedEntry` unless the entry (whose bytes are ``data`` when the caller has
    read them) matches its record; an entry with no record (e.g. from an older version) passes and
    is checked by decoding. ``FileNotFoundError`` for a missing one."""
    key = os.fspath(path)
    stat = _stat_key(path)
    if _checked.get(key) == stat:
        return
    try:
        recorded = _digest_path(path).read_bytes().decode("ascii", "replace")
    except OSError:
        return
    if data is None:
        data = _read_bytes(path)
    if recorded != bytes_digest(data):
        raise DamagedEntry(path, "is not the file rerender wrote there (size or digest differ)")
    _checked[key] = stat


def _read_bytes(path: str | os.PathLike) -> bytes:
    """An entry's bytes; a missing file stays FileNotFoundError (not stored yet), any other failure
    to read it is damage."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise DamagedEntry(path, f"cannot be read ({e.strerror or e})") from None


def read_entry(path: str | os.PathLike) -> bytes:
    """The bytes of an entry, checked against its record (:func:`check_entry`)."""
    data = _read_bytes(path)
    check_entry(path, data)
    return data


def entry_ok(path: str | os.PathLike) -> bool:
    """Whether the entry exists and matches its record (one without a record counts as good); a
    damaged one is reported (:func:`report_damaged`)."""
    try:
        check_entry(path)
        return True
    except FileNotFoundError:
        return False
    except DamagedEntry as e:
        report_damaged(e.path)
        return False


def remove_entry(path: str | os.PathLike) -> None:
    """Delete an entry and its record."""
    for p in (Path(path), _digest_path(path)):
        p.unlink(missing_ok=True)


def array_digest(a: np.ndarray) -> str:
    """Hash of an array's shape, dtype and bytes."""
    h = hashlib.sha256(f"{a.shape}{a.dtype}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:20]


def weights_digest(path: str | os.PathLike) -> str:
    """Identity of a (large) file that rerender reads but never writes, such as model weights: its size
    and modification time, the safetensors header (every tensor's name, dtype, shape and offsets) and the
    first and last MiB of its data. Cheap for gigabyte files, and a file replaced at the same path gets
    another identity even when the size and the time stamp were kept (same-architecture weights share
    the header, not the data)."""
    p = Path(path)
    st = p.stat()
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode())
    data_start = 0
    with open(p, "rb") as f:
        if p.suffix.lower() == ".safetensors":
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if 0 <= n <= st.st_size - 8:
                h.update(f.read(n))
                data_start = 8 + n
        f.seek(data_start)
        h.update(f.read(1 << 20))
        f.seek(max(data_start, st.st_size - (1 << 20)))
        h.update(f.read(1 << 20))
    return h.hexdigest()[:20]


# ------------------------------------------------------------------------------------------------
# atomic writes


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False, if_changed: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same extension, so encoders pick the format) and
    move it into place when the block succeeds; on failure it is removed. ``fsync``: flush the file
    to disk before it replaces the target (final outputs: a crash right after "done" loses nothing).
    ``if_changed``: a target that already holds the same bytes is left alone (a resumed job keeps
    finished files and their timestamps).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.rr-{_HOST}-{os.getpid()}-", suffix=f".tmp{path.suffix}",
                               dir=path.parent)
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if if_changed and path.is_file() and filecmp.cmp(tmp_path, path, shallow=False):
            return
        if fsync:
            with open(tmp_path, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except OSError as e:
        if e.errno in _NO_ROOM:  # named by the file it was for, not by its temporary
            raise no_room(path, e.errno) from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> None:
    with atomic_path(path, fsync=fsync) as tmp:
        write_all(tmp, data)


def write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save_npz(path: str | os.PathLike, *, compressed: bool = False, **arrays) -> None:
    """Write ``arrays`` to an .npz file atomically (compact encodings: :mod:`rerender.packing`)."""
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    atomic_write_bytes(path, buf.getbuffer())
    record_entry(path, buf.getbuffer())


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of an .npz file by name (packed entries: :func:`rerender.packing.load_packed`); an
    unreadable or damaged file raises :class:`DamagedEntry`."""
    data = read_entry(path)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise DamagedEntry(path, f"is not a readable .npz file ({e})") from None


def link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (a hard link, put in place atomically), or a copy
    where the file system cannot link; nothing is done when it already holds the same bytes."""
    try:
        if os.path.samefile(source, target) or target.read_bytes() == source.read_bytes():
            return
    except OSError:
        pass
    tmp = target.with_name(f".{target.name}.rr-{_HOST}-{os.getpid()}-link.tmp")
    try:
        os.link(source, tmp)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        write_bytes_if_changed(target, source.read_bytes())


def write_bytes_if_changed(target: str | os.PathLike, data: bytes, *, fsync: bool = False) -> bool:
    """Write ``data`` atomically unless ``target`` already holds these bytes (a resumed job leaves
    finished files, and their timestamps, alone); True when written."""
    try:
        if Path(target).read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write_bytes(target, data, fsync=fsync)
    return True


# ------------------------------------------------------------------------------------------------
# temporaries left by killed runs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_own_temporary(name: str) -> bool:
    """Whether a file name has the form of a temporary made by :func:`atomic_path`."""
    return bool(_TEMP_RX.match(name))


def remove_stale_temporaries(folder: str | os.PathLike, *, recursive: bool = False,
                             targets: Iterable[str] | None = None) -> int:
    """Remove temporaries of :func:`atomic_path` in ``folder`` whose writing process is gone.

    Only names of rerender's own form are considered, and only those written by processes of this
    machine that are no longer alive; ``targets`` restricts it to temporaries of these file names (e.g. an output
    video in a folder shared with other files). Returns the number of files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    wanted = None if targets is None else {f".{t}." for t in targets}
    removed = 0
    walker = folder.rglob(".*") if recursive else folder.glob(".*")
    for p in walker:
        m = _TEMP_RX.match(p.name)
        if m is None or (wanted is not None and not any(p.name.startswith(w) for w in wanted)):
            continue
        if m.group(1) != _HOST or _alive(int(m.group(2))) or not p.is_file():
            continue
        try:
            p.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed
