"""The key-frame stage of a job: render every K-th frame of a clip into ``WORK/keys/NNNN.png``.

Resumable: ``WORK/keys/keys.json`` records a fingerprint per key frame, chained over the previous
key (a key depends on the anchor and the previous key), so a rerun skips keys rendered with the
same options and inputs. Cross-frame attention needs the anchor's and the previous key's attention
inputs, so those two (and only those two) are kept in ``WORK/keys/.state/`` while the stage runs;
they are deleted when every key is rendered.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .config import KeyframeConfig

FlowFn = Callable[[int, int], np.ndarray]  # (a, b) -> flow_{a->b}, H x W x 2 float32


def key_indices(frames: range, interval: int, include_last: bool = True) -> list[int]:
    """Absolute indices of the key frames of a contiguous range: start, start + K, ... (+ the last)."""
    if interval < 1:
        raise ValueError(f"interval: must be >= 1, got {interval}")
    if len(frames) == 0:
        raise ValueError("frames: the frame range is empty")
    keys = list(range(frames.start, frames.stop, interval))
    if include_last and keys[-1] != frames.stop - 1:
        keys.append(frames.stop - 1)
    return keys


@dataclasses.dataclass
class StageResult:
    keys: list[int]
    rendered: list[int]
    skipped: list[int]
    seconds_per_key: float | None = None


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes() + str(a.shape).encode()).hexdigest()[:16]


def _chain(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _name(i: int) -> str:
    return f"{i:04d}"


class _StateStore:
    """The anchor's and the latest key's memories on disk (safetensors), for resuming."""

    def __init__(self, keys_dir: Path):
        self.dir = keys_dir / ".state"

    def path(self, idx: int) -> Path:
        return self.dir / f"{_name(idx)}.safetensors"

    def save(self, idx: int, fingerprint: str, memory) -> None:
        from safetensors.torch import save_file

        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path(idx).with_suffix(".tmp")
        save_file(memory.to_tensors(), str(tmp), metadata={"fingerprint": fingerprint})
        os.replace(tmp, self.path(idx))

    def load(self, idx: int, fingerprint: str, image: np.ndarray, device):
        from safetensors import safe_open

        from .sampler import FrameMemory

        p = self.path(idx)
        if not p.is_file():
            return None
        with safe_open(str(p), framework="pt") as f:
            if (f.metadata() or {}).get("fingerprint") != fingerprint:
                return None
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        return FrameMemory.from_tensors(image, tensors, device)

    def drop(self, idx: int) -> None:
        self.path(idx).unlink(missing_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _conditions(cfg: KeyframeConfig, frame: np.ndarray, idx: int, device: str) -> list[np.ndarray]:
    from . import controls

    out, images = [], iter(cfg.control_images)
    for kind in cfg.control:
        if kind == "canny":
            out.append(controls.canny(frame, cfg.canny_low, cfg.canny_high))
        elif kind == "hed":
            out.append(controls.hed(frame, device))
        else:
            out.append(controls.load_condition_image(next(images), idx, (frame.shape[1], frame.shape[0])))
    return out


def render_keys(frames: Callable[[int], np.ndarray], keys: Sequence[int], keys_dir: str | os.PathLike,
                cfg: KeyframeConfig, *, flow: FlowFn | None = None, occlusion: Callable | None = None,
                components=None, progress=None, first_only: bool = False,
                on_key: Callable[[int], None] | None = None) -> StageResult:
    """Render the key frames ``keys`` (absolute indices, anchor first) into ``keys_dir/NNNN.png``.

    ``frames(i)`` returns input frame i (uint8 RGB at the working size). ``flow(a, b)`` returns
    flow_{a->b} (e.g. ``rerender.flow.FlowCache.get``); ``occlusion(f_ab, f_ba)`` defaults to
    ``rerender.occlusion``. ``components``: preloaded :class:`models.Components` (else loaded from cfg).
    ``on_key(i)``: called once per key as soon as ``keys_dir/NNNN.png`` holds its final image (kept
    from an earlier run, or just written), e.g. to start propagating the segments next to it.
    """
    import time

    from . import constraints
    from .sampler import Geometry, KeyframeSampler

    if not keys:
        raise ValueError("keys: no key frames to render")
    keys = list(keys)
    more_later = first_only and len(keys) > 1  # a preview: keep the anchor's state for the full run
    if first_only:
        keys = keys[:1]
    keys_dir = Path(keys_dir)
    keys_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = keys_dir / "keys.json"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    except ValueError:
        manifest = {}
    store = _StateStore(keys_dir)
    cfg_fp = cfg.fingerprint()

    # fingerprints chain over the previous key: a key is valid only if everything before it is
    inputs = {i: frames(i) for i in keys}
    fps, prev_fp = {}, "anchor"
    for i in keys:
        fps[i] = _chain(cfg_fp, _digest(inputs[i]), prev_fp if i != keys[0] else "anchor")
        prev_fp = fps[i]
    done = [i for i in keys if manifest.get(_name(i)) == fps[i] and (keys_dir / f"{_name(i)}.png").is_file()]
    first_todo = next((n for n, i in enumerate(keys) if i not in done), len(keys))
    result = StageResult(keys=keys, rendered=[], skipped=keys[:first_todo])
    reporter_stage = progress.stage("keyframes", len(keys)) if progress is not None else None
    if reporter_stage is not None and first_todo:
        reporter_stage.update(first_todo)
    if first_todo == len(keys):
        if reporter_stage is not None:
            reporter_stage.close()
        if not first_only:
            store.clear()
        for i in keys if on_key is not None else ():
            on_key(i)
        return result

    from . import models
    from rerender.media import read_image, write_image

    comps = components or models.load_components(
        cfg.model, cfg.controlnets(), model_config=cfg.model_config, vae=cfg.vae, loras=cfg.lora,
        allow_pickle=cfg.allow_pickle, device=cfg.device, dtype=cfg.dtype)
    sampler = KeyframeSampler(comps, cfg)
    dev = str(comps.device)
    anchor_idx = keys[0]
    if occlusion is None and (cfg.shape_fusion or cfg.pixel_fusion):
        from rerender import occlusion as _occ

        occlusion = _occ

    # colour correction: inputs take the colour histogram of a frame generated from noise
    color_ref = None
    if cfg.color_correction:
        ref_path = store.dir / f"color_{cfg_fp}.png"
        if ref_path.is_file():
            color_ref = read_image(ref_path)
        else:
            a = inputs[anchor_idx]
            color_ref = sampler.generate(a, _conditions(cfg, a, anchor_idx, dev))
            store.dir.mkdir(parents=True, exist_ok=True)
            write_image(ref_path, color_ref)

    def source(i: int) -> np.ndarray:
        f = inputs[i]
        return constraints.match_histograms(f, color_ref) if color_ref is not None else f

    # memories of the anchor and the previous key: from disk when resuming, else re-rendered
    anchor_mem = prev_mem = None
    if first_todo > 0:
        anchor_mem = store.load(anchor_idx, fps[anchor_idx], read_image(keys_dir / f"{_name(anchor_idx)}.png"), comps.device)
        p = keys[first_todo - 1]
        prev_mem = anchor_mem if p == anchor_idx else store.load(p, fps[p], read_image(keys_dir / f"{_name(p)}.png"), comps.device)
        if anchor_mem is None or prev_mem is None:
            first_todo = 0  # the state is gone: render the chain again (deterministic, same result)
            result.skipped = []
            if reporter_stage is not None:
                reporter_stage.close()
                reporter_stage = progress.stage("keyframes", len(keys))

    def geometry(i: int, prev: int) -> Geometry:
        h, w = inputs[i].shape[:2]
        if not (cfg.shape_fusion or cfg.pixel_fusion):
            return Geometry.identity(h, w)
        if flow is None:
            raise ValueError("flow: a flow function is needed for shape-/pixel-aware fusion")
        fa, fa_back = flow(i, anchor_idx), flow(anchor_idx, i)
        fp_, fp_back = (fa, fa_back) if prev == anchor_idx else (flow(i, prev), flow(prev, i))
        return Geometry(fa, occlusion(fa, fa_back), fp_, occlusion(fp_, fp_back))

    for i in keys[:first_todo] if on_key is not None else ():  # kept from an earlier run
        on_key(i)
    t0 = time.perf_counter()
    try:
        for n in range(first_todo, len(keys)):
            i = keys[n]
            frame = source(i)
            conds = _conditions(cfg, inputs[i], i, dev)
            need_memory = n + 1 < len(keys) or more_later
            if n == 0:
                res = sampler.render(frame, conds, keep_memory=need_memory)
            else:
                res = sampler.render(frame, conds, anchor_mem, prev_mem, geometry(i, keys[n - 1]),
                                     keep_memory=need_memory)
            write_image(keys_dir / f"{_name(i)}.png", res.image)
            manifest[_name(i)] = fps[i]
            tmp = manifest_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
            os.replace(tmp, manifest_path)
            if need_memory and cfg.save_state:
                store.save(i, fps[i], res.memory)
            # the previous key's memory is no longer needed once this key exists (the anchor's is)
            if n >= 2 and keys[n - 1] != anchor_idx:
                store.drop(keys[n - 1])
            if n == 0:
                anchor_mem = res.memory
            prev_mem = res.memory
            result.rendered.append(i)
            if reporter_stage is not None:
                reporter_stage.update(1)
            if on_key is not None:
                on_key(i)
    finally:
        if reporter_stage is not None:
            reporter_stage.close()
        sampler.release()
    if result.rendered:
        result.seconds_per_key = (time.perf_counter() - t0) / len(result.rendered)
    if not first_only:
        store.clear()  # every key exists: the attention caches are not needed any more
    del anchor_mem, prev_mem
    return result
