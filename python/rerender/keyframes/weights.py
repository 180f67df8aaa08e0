"""The key-frame stage's models on disk: which files hold their weights, the identity of those files
(the stage's caches are keyed on it: weights replaced at the same path invalidate the inverted latents
and the keys), and what a folder lacks when it holds no weights at all.

Importing this module does not import torch (the config reads it).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional

from rerender.files import digest, file_digest, weights_digest

PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl"}
SAFE_SUFFIXES = {".safetensors"}
WEIGHT_SUFFIXES = SAFE_SUFFIXES | PICKLE_SUFFIXES


def parse_lora(spec: str) -> tuple[str, float]:
    """``FILE`` or ``FILE:SCALE`` -> (file, scale); the suffix is a scale only if it parses as a number."""
    path, sep, tail = spec.rpartition(":")
    if sep:
        try:
            return path, float(tail)
        except ValueError:
            pass
    return spec, 1.0


def _files(folder: Path) -> list[Path]:
    """Weight and config files under a model folder (hidden files and folders, e.g. caches, left out)."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts) and \
                (p.suffix.lower() in WEIGHT_SUFFIXES or p.suffix.lower() == ".json"):
            out.append(p)
    return out


def source_identity(source: str) -> list:
    """What a model source is made of: a file's or every weight/config file's identity under a folder
    (weights: :func:`rerender.files.weights_digest`; configs: their bytes); a hub id is its own identity."""
    p = Path(source).expanduser()
    if p.is_file():
        return [source, weights_digest(p)]
    if p.is_dir():
        return [source, [[str(f.relative_to(p)), weights_digest(f) if f.suffix.lower() in WEIGHT_SUFFIXES
                          else file_digest([f])] for f in _files(p)]]
    return [source]


def identity(sources: Iterable[Optional[str]]) -> str:
    """Digest of the identities of ``sources`` (None / empty ones skipped)."""
    return digest([source_identity(s) for s in sources if s])


def missing_weights(folder: str | Path) -> list[str]:
    """The parts of a diffusers / transformers folder that hold no weights file at all (empty when each
    has one; pickle-only parts are not "missing", they need --allow-pickle). A pipeline folder
    (model_index.json) has one part per component folder with a config.json; a model folder is one part."""
    folder = Path(folder).expanduser()
    if (folder / "model_index.json").is_file():
        try:
            names = [k for k, v in json.loads((folder / "model_index.json").read_text()).items()
                     if isinstance(v, list) and v[0] is not None]
        except (OSError, ValueError, TypeError, IndexError, AttributeError):
            names = []
        parts = [folder / n for n in names if (folder / n / "config.json").is_file()]
    else:
        parts = [folder]
    return [f"{p.relative_to(folder)}/" if p != folder else f"{folder}/" for p in parts
            if not any(f.is_file() and f.suffix.lower() in WEIGHT_SUFFIXES for f in p.iterdir())]
