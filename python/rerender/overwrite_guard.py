"""Refuse, before anything is written, a job whose outputs could overwrite or delete its inputs.

Inputs (the clip's files, the key-frame folder, mattes, ...) and write targets (the output file or
folder, the work directory, and every other file a command writes: a metrics report, a key plan)
are compared as real paths (symlinks and ``..`` resolved), so
``seq/%04d.png`` as input and ``seq`` as output are recognised as the same folder.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import JobError

KEYS = "the key-frame folder"
KEY_FILE = "a key frame"


def _real(p: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.fspath(p)))


def _inside(child: Path, parent: Path) -> bool:
    """Whether real path ``child`` is ``parent`` or lies below it."""
    return child == parent or parent in child.parents


@dataclass
class Inputs:
    """What a job reads: (description, real path) of input files and of input folders."""

    files: list[tuple[str, Path]] = field(default_factory=list)
    folders: list[tuple[str, Path]] = field(default_factory=list)

    def add_files(self, what: str, paths: Iterable[str | os.PathLike]) -> "Inputs":
        for p in paths:
            self.files.append((what, _real(p)))
        return self

    def add_folder(self, what: str, path: str | os.PathLike) -> "Inputs":
        self.folders.append((what, _real(path)))
        return self

    def all(self) -> list[tuple[str, Path]]:
        return self.files + self.folders


def check_output(output: str | os.PathLike, inputs: Inputs, *, is_folder: bool) -> None:
    """Raise :class:`JobError` when writing ``output`` could overwrite an input.

    The output (file or folder) must not be an input file or folder, and a folder output must not
    contain an input (its frames would be written among the input's files).
    """
    out = _real(output)
    for what, p in inputs.all():
        if out == p:
            raise JobError(f"{output}: the output must not be {what} ({p}); writing it would overwrite it")
    if not is_folder:
        return
    for what, p in inputs.all():
        if _inside(p, out):
            raise JobError(f"{output}: the output folder contains {what} ({p}); rerender writes its "
                           "frames there and could overwrite it, so choose another output folder")


def check_work_dir(work_dir: str | os.PathLike, inputs: Inputs, output: str | os.PathLike | None = None,
                   *, keys_ok: bool = True) -> None:
    """Raise :class:`JobError` when the work directory's managed sub-folders (which rerender
    clears and rewrites) would hold an input or the output, or one of the files it writes at its
    top (a link planted there) is an input.

    ``keys_ok``: the key-frame folder may be the work directory's own ``keys/`` (``rerender run``
    renders key frames there and propagates them).
    """
    from .workdir import MANAGED, OWN_FILES

    root = _real(work_dir)
    for name in OWN_FILES:  # files rerender writes at the top of the work directory (key plan, manifest, ...)
        check_file_target(Path(work_dir) / name, inputs, f"the work directory's {name}")
    managed = {name: root / name for name in MANAGED}
    for what, p in inputs.all():
        if p == root:
            raise JobError(f"{work_dir}: the work directory is {what}; choose another --work-dir")
        for name, m in managed.items():
            if name == "keys" and keys_ok and (what == KEYS and p == m or what == KEY_FILE):
                continue
            if _inside(p, m):
                raise JobError(f"{work_dir}: {what} ({p}) lies inside the work directory's {name}/ folder, "
                               "which rerender manages and clears; choose another --work-dir")
    if output is not None:
        out = _real(output)
        if out == root or any(_inside(out, m) for m in managed.values()):
            raise JobError(f"{output}: the output must not be the work directory or inside its managed "
                           f"folders ({', '.join(MANAGED)})")


def check_file_target(path: str | os.PathLike, inputs: Inputs, what: str) -> None:
    """Raise :class:`JobError` when writing the file ``path`` (``what``: e.g. "the JSON report")
    could replace an input, or when ``path`` is a folder.

    A file that exists and is not an input may be replaced: naming it is the user's explicit choice.
    """
    if not os.fspath(path).strip():
        raise JobError(f"{what}: the file name is empty")
    if os.path.isdir(path):
        raise JobError(f"{path}: is a folder; give {what} a file name (e.g. {Path(path) / 'report.json'})")
    target = _real(path)
    for desc, p in inputs.all():
        if target == p:
            raise JobError(f"{path}: {what} must not be {desc} ({p}); writing it would overwrite it")
