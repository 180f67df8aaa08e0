"""The key-frame stage of a job: render every K-th frame of a clip into ``WORK/keys/NNNN.png``.

Resumable: ``WORK/keys/keys.json`` records a fingerprint per key frame, chained over the previous
key (a key depends on the anchor and the previous key), so a rerun skips keys rendered with the
same options and inputs. Cross-frame attention needs the anchor's and the previous key's attention
inputs (with re-anchoring also the current segment anchor's), so those (and only those) are kept in
``WORK/keys/.state/`` while the stage runs; they are deleted when every key is rendered.

The whole shot shares one anchor memory object and one noise tensor, whatever the number of keys
(and whichever list of keys: interval-based or any other). With ``init="inversion"`` the inverted
latents are cached in ``WORK/keys/inversion/`` (they depend only on the input, the model and the
source prompt, so prompt changes reuse them) and kept after the stage.
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

    def stored(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*.safetensors")) if self.dir.is_dir() else []


class _InversionCache:
    """Inverted start latents per key frame (safetensors with the inversion fingerprint as metadata)."""

    def __init__(self, keys_dir: Path):
        self.dir = keys_dir / "inversion"

    def path(self, idx: int) -> Path:
        return self.dir / f"{_name(idx)}.safetensors"

    def load(self, idx: int, fingerprint: str):
        from safetensors import safe_open

        p = self.path(idx)
        if not p.is_file():
            return None
        with safe_open(str(p), framework="pt") as f:
            if (f.metadata() or {}).get("fingerprint") != fingerprint:
                return None
            return f.get_tensor("latent")

    def save(self, idx: int, fingerprint: str, latent) -> None:
        from safetensors.torch import save_file

        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path(idx).with_suffix(".tmp")
        save_file({"latent": latent.detach().contiguous().cpu()}, str(tmp), metadata={"fingerprint": fingerprint})
        os.replace(tmp, self.path(idx))


def _conditions(cfg: KeyframeConfig, frame: np.ndarray, idx: int, device: str) -> list[np.ndarray]:
    from . import controls

    out, images = [], iter(cfg.control_images)
    for kind in cfg.control:
        if kind == "canny":
            out.append(controls.canny(frame, cfg.canny_low, cfg.canny_high))
        elif kind == "hed":
            out.append(controls.hed(frame, device))
        elif kind == "depth":
            out.append(controls.depth_estimator(cfg.depth_model, cfg.allow_pickle, device)(frame))
        else:
            out.append(controls.load_condition_image(next(images), idx, (frame.shape[1], frame.shape[0])))
    return out


def load_components(cfg: KeyframeConfig):
    """The models ``cfg`` names, loaded once (a stage rendering several shots shares them)."""
    from . import models

    return models.load_components(cfg.model, cfg.controlnets(), model_config=cfg.model_config, vae=cfg.vae,
                                  loras=cfg.lora, allow_pickle=cfg.allow_pickle, device=cfg.device, dtype=cfg.dtype,
                                  offload=cfg.offload, ip_adapter=cfg.ip_adapter if cfg.reference else None,
                                  image_encoder=cfg.image_encoder, family=cfg.family)


class _RecentFrames:
    """``frames(i)`` by index, the last few kept (a key reads its own frame, the anchor's and the
    previous key's), so that the stage's memory does not grow with the number of keys."""

    def __init__(self, frames: Callable[[int], np.ndarray], keep: int = 4):
        self._frames, self._keep = frames, keep
        self._recent: dict[int, np.ndarray] = {}

    def __getitem__(self, i: int) -> np.ndarray:
        img = self._recent.pop(i, None)
        if img is None:
            img = self._frames(i)
        self._recent[i] = img  # most recent last
        while len(self._recent) > self._keep:
            del self._recent[next(iter(self._recent))]
        return img


def render_keys(frames: Callable[[int], np.ndarray], keys: Sequence[int], keys_dir: str | os.PathLike,
                cfg: KeyframeConfig, *, flow: FlowFn | None = None, occlusion: Callable | None = None,
                components=None, progress=None, first_only: bool = False,
                flow_dir: str | os.PathLike | None = None,
                matte: Callable[[int], np.ndarray] | None = None,
                on_key: Callable[[int], None] | None = None) -> StageResult:
    """Render the key frames ``keys`` (absolute indices, anchor first) into ``keys_dir/NNNN.png``.

    ``frames(i)`` returns input frame i (uint8 RGB at the working size). ``flow(a, b)`` returns
    flow_{a->b} (e.g. ``rerender.flow.FlowCache.get``); with ``cfg.raft_weights`` the fusions use RAFT
    flows instead, cached in ``flow_dir`` (default: ``keys_dir``'s parent's ``flow``, i.e. WORK/flow).
    ``occlusion(f_ab, f_ba)`` defaults to ``rerender.occlusion``. ``components``: preloaded
    :class:`models.Components` (else loaded from cfg). ``matte(i)``: uint8 H x W (255 = restyle) or
    None; keys then change only inside it (masked SDEdit, then composited over the input).
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
    if cfg.reference:  # the reference image's pixels, not only its path
        from rerender.media import read_image as _read

        cfg_fp = _chain(cfg_fp, _digest(_read(cfg.reference)))

    # fingerprints chain over the previous key: a key is valid only if everything before it is.
    # Input frames (and mattes) are read when needed and only the last few kept: a long shot has
    # thousands of keys
    inputs = _RecentFrames(frames)
    mattes = _RecentFrames(matte) if matte is not None else None
    fps, prev_fp = {}, "anchor"
    for i in keys:
        fps[i] = _chain(cfg_fp, _digest(inputs[i]), prev_fp if i != keys[0] else "anchor",
                        *([_digest(mattes[i])] if mattes is not None else []))
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

    from rerender.media import read_image, write_image

    comps = components or load_components(cfg)
    sampler = KeyframeSampler(comps, cfg)
    dev = str(comps.device)
    anchor_idx = keys[0]  # the origin: the anchor of the whole shot (or of its first segment)
    if occlusion is None and (cfg.shape_fusion or cfg.pixel_fusion):
        from rerender import occlusion as _occ

        occlusion = _occ

    # colour correction: inputs take the chroma of a frame generated from noise, keeping their lightness
    color_ref = None
    if cfg.color_correction:
        ref_path = store.dir / f"color_{cfg_fp}.png"
        if ref_path.is_file():
            color_ref = read_image(ref_path)
        else:
            a = inputs[anchor_idx]
            color_ref = sampler.generate(a, _conditions(cfg, a, anchor_idx, dev), cfg.prompts_for(anchor_idx))
            store.dir.mkdir(parents=True, exist_ok=True)
            write_image(ref_path, color_ref)

    def source(i: int) -> np.ndarray:
        f = inputs[i]
        return constraints.match_colour(f, color_ref) if color_ref is not None else f

    # Memories (attention caches, x0, statistics) by key index: the shot's first key (the origin), the
    # segment anchor of the next key, and the previous key. From disk when resuming, else re-rendered.
    def needed(position: int) -> set[int]:
        """Key indices whose memories key ``position`` reads."""
        return {keys[0], keys[cfg.segment_anchor(position)], keys[position - 1]} if position > 0 else set()

    memories: dict = {}
    if first_todo > 0:
        cache_dev = sampler.cache_device
        for idx in sorted(needed(first_todo)):
            memories[idx] = store.load(idx, fps[idx], read_image(keys_dir / f"{_name(idx)}.png"), cache_dev)
        if any(m is None for m in memories.values()):
            memories = {}
            first_todo = 0  # the state is gone: render the chain again (deterministic, same result)
            result.skipped = []
            if reporter_stage is not None:
                reporter_stage.close()
                reporter_stage = progress.stage("keyframes", len(keys))

    inversions = _InversionCache(keys_dir) if cfg.init == "inversion" else None
    inv_fp = cfg.inversion_fingerprint()

    def start_latent(i: int, frame: np.ndarray, conds: list[np.ndarray]):
        """The inverted latent of key i (cached), or None for SDEdit."""
        if inversions is None:
            return None
        fp = _chain(inv_fp, _digest(frame), *(_digest(c) for c in conds))
        latent = inversions.load(i, fp)
        if latent is None:
            latent = sampler.invert(frame, conds)
            inversions.save(i, fp, latent)
        return latent

    fusion_flow = flow
    if cfg.raft_weights and (cfg.shape_fusion or cfg.pixel_fusion):
        # learned flow for the long jumps between key frames (where DIS is weakest)
        from rerender.flow import FlowCache
        from rerender.raft import RaftFlow

        raft = RaftFlow(cfg.raft_weights, allow_pickle=cfg.allow_pickle, device=dev, iters=cfg.raft_iters)
        raft_cache = FlowCache(Path(flow_dir) if flow_dir is not None else keys_dir.parent / "flow", raft)

        def fusion_flow(a: int, b: int) -> np.ndarray:
            return raft_cache.get(a, b, inputs[a], inputs[b])

    def geometry(i: int, anchor: int, prev: int) -> Geometry:
        h, w = inputs[i].shape[:2]
        if not (cfg.shape_fusion or cfg.pixel_fusion):
            return Geometry.identity(h, w)
        if fusion_flow is None:
            raise ValueError("flow: a flow function is needed for shape-/pixel-aware fusion")
        fa, fa_back = fusion_flow(i, anchor), fusion_flow(anchor, i)
        fp_, fp_back = (fa, fa_back) if prev == anchor else (fusion_flow(i, prev), fusion_flow(prev, i))
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
            prompts = cfg.prompts_for(i)
            init = start_latent(i, frame, conds)
            if n == 0:
                res = sampler.render(frame, conds, keep_memory=need_memory, prompts=prompts, init_latent=init,
                                     matte=mattes[i] if mattes is not None else None)
            else:
                a = keys[cfg.segment_anchor(n)]
                res = sampler.render(frame, conds, memories[a], memories[keys[n - 1]], geometry(i, a, keys[n - 1]),
                                     keep_memory=need_memory, prompts=prompts, init_latent=init,
                                     origin=memories[keys[0]], matte=mattes[i] if mattes is not None else None)
            image = res.image
            if mattes is not None:  # outside the matte the key is the input's, exactly
                from rerender.matte import composite

                image = composite(res.image, inputs[i], mattes[i].astype(np.float32) / 255.0)
            write_image(keys_dir / f"{_name(i)}.png", image)
            manifest[_name(i)] = fps[i]
            tmp = manifest_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
            os.replace(tmp, manifest_path)
            if need_memory and cfg.save_state:
                store.save(i, fps[i], res.memory)
            memories[i] = res.memory
            # keep only what the next key reads (origin, its segment anchor, this key), in memory and on disk
            keep = needed(n + 1) if n + 1 < len(keys) else {keys[0]}
            memories = {k: m for k, m in memories.items() if k in keep}
            for k in store.stored():
                if k not in keep:
                    store.drop(k)
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
    memories.clear()
    return result
