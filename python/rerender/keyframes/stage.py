"""The key-frame stage of a job: render every K-th frame of a clip into ``WORK/keys/NNNN.png``.

:class:`KeyframeStage` is made of parts, one per concern:

- :class:`StageInputs`: input frames, mattes and condition images by index (the last few kept: a
  long shot has thousands of keys), the colour-corrected source of a key, each key's fingerprint;
- :class:`MemoryStore`: the frame memories (attention inputs, x0, statistics) later keys read, held
  for the keys the next key needs and kept in ``WORK/keys/.state/`` for resuming;
- :class:`InversionCache`: with ``init="inversion"``, the inverted start latents in
  ``WORK/keys/inversion/`` (they depend only on the input, the model and the source prompt, so prompt
  changes reuse them; kept after the stage);
- :class:`FusionGeometry`: flows and occlusions from a key to its anchor and previous key;
- :class:`KeyManifest`: the outputs, ``WORK/keys/NNNN.png`` and ``keys.json``;
- :meth:`KeyframeStage.run`: the sampler loop over the keys.

Resumable: ``keys.json`` records a fingerprint per key frame, chained over the previous key (a key
depends on the anchor and the previous key), so a rerun skips keys rendered with the same options
and inputs. Cross-frame attention needs the anchor's and the previous key's attention inputs (with
re-anchoring also the current segment anchor's), so those (and only those) are kept in ``.state/``
while the stage runs; they are deleted when every key is rendered. The whole shot shares one anchor
memory object and one noise tensor, whatever the number of keys (and whichever list of keys).
All files are written through :mod:`rerender.files` (atomic replaces, digests, frame names).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rerender.files import array_digest, atomic_path, atomic_write_bytes, digest, frame_name, read_json

from . import weights
from .conditions import condition_images
from .config import KeyframeConfig

FlowFn = Callable[[int, int], np.ndarray]  # (a, b) -> flow_{a->b}, H x W x 2 float32


@dataclasses.dataclass
class StageResult:
    keys: list[int]
    rendered: list[int]
    skipped: list[int]
    seconds_per_key: float | None = None


def load_components(cfg: KeyframeConfig):
    """The models ``cfg`` names, loaded once (a stage rendering several shots shares them)."""
    from . import models

    return models.load_components(models.ModelSpec.from_config(cfg))


# ------------------------------------------------------------------------------------------------
# inputs and conditions


class RecentFrames:
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


class StageInputs:
    """The shot's input frames, mattes (uint8 H x W, 255 = restyle) and condition images by index."""

    def __init__(self, frames: Callable[[int], np.ndarray], matte: Callable[[int], np.ndarray] | None,
                 cfg: KeyframeConfig):
        self.cfg = cfg
        self.frames = RecentFrames(frames)
        self.mattes = RecentFrames(matte) if matte is not None else None
        self.colour_reference: np.ndarray | None = None
        """With colour correction: the frame generated from noise whose chroma the inputs take."""

    def frame(self, i: int) -> np.ndarray:
        return self.frames[i]

    def matte(self, i: int) -> np.ndarray | None:
        return self.mattes[i] if self.mattes is not None else None

    def conditions(self, i: int, components) -> list[np.ndarray]:
        """The condition image of each ControlNet for input frame i (from the uncorrected frame), made on
        the components' device under their offload policy."""
        return condition_images(self.cfg, self.frames[i], i, str(components.device), components)

    def source(self, i: int) -> np.ndarray:
        """The frame key i starts from: the input, with the colour reference's chroma if there is one."""
        from . import constraints

        f = self.frames[i]
        return constraints.match_colour(f, self.colour_reference) if self.colour_reference is not None else f

    def fingerprints(self, keys: list[int], options: str) -> dict[int, str]:
        """Fingerprint of each key: the options, its input (and matte), chained over the previous key
        (a key is valid only if everything before it is)."""
        fps, prev = {}, "anchor"
        for i in keys:
            parts = [options, array_digest(self.frames[i]), prev]
            if self.mattes is not None:
                parts.append(array_digest(self.mattes[i]))
            fps[i] = prev = digest(parts)
        return fps


# ------------------------------------------------------------------------------------------------
# caches: frame memories and inverted latents


class TensorFiles:
    """``NNNN.safetensors`` files in one folder, each stamped with the fingerprint it was made under.
    A file with another fingerprint, or one that cannot be read, counts as missing."""

    def __init__(self, folder: Path):
        self.dir = folder

    def path(self, idx: int) -> Path:
        return self.dir / f"{frame_name(idx)}.safetensors"

    def load(self, idx: int, fingerprint: str) -> dict | None:
        from safetensors import safe_open

        p = self.path(idx)
        if not p.is_file():
            return None
        try:
            with safe_open(str(p), framework="pt") as f:
                if (f.metadata() or {}).get("fingerprint") != fingerprint:
                    return None
                return {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # a damaged cache entry is recomputed (safetensors has no public error type)
            print(f"rerender: {p} is unreadable ({e}); computing it again", file=sys.stderr)
            return None

    def save(self, idx: int, fingerprint: str, tensors: dict) -> None:
        from safetensors.torch import save_file

        with atomic_path(self.path(idx)) as tmp:
            save_file(tensors, str(tmp), metadata={"fingerprint": fingerprint})

    def drop(self, idx: int) -> None:
        self.path(idx).unlink(missing_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def stored(self) -> list[int]:
        """Indices with a file (temporaries of unfinished writes are not entries)."""
        if not self.dir.is_dir():
            return []
        return sorted(int(p.stem) for p in self.dir.glob("*.safetensors") if p.stem.isdigit())


class MemoryStore:
    """Frame memories by key index: held for the keys that the next key reads (the shot's first key,
    its segment anchor, the previous key), and on disk (``.state/``) for resuming."""

    def __init__(self, keys_dir: Path, keys: list[int], cfg: KeyframeConfig):
        self.files = TensorFiles(keys_dir / ".state")
        self.keys, self.cfg = keys, cfg
        self.held: dict = {}

    @property
    def dir(self) -> Path:
        return self.files.dir

    def needed(self, position: int) -> set[int]:
        """Key indices whose memories key ``position`` reads."""
        keys = self.keys
        return {keys[0], keys[self.cfg.segment_anchor(position)], keys[position - 1]} if position > 0 else set()

    def restore(self, position: int, fps: dict[int, str], images: Callable[[int], np.ndarray], device) -> bool:
        """Load from disk what key ``position`` reads; False (nothing held) when any of it is missing."""
        from .sampler import FrameMemory

        for idx in sorted(self.needed(position)):
            tensors = self.files.load(idx, fps[idx])
            if tensors is None:
                self.held = {}
                return False
            self.held[idx] = FrameMemory.from_tensors(images(idx), tensors, device)
        return True

    def keep(self, position: int, fingerprint: str, memory, save: bool) -> None:
        """Hold key ``position``'s memory (and save it with ``save``), then drop, here and on disk, every
        memory that the next key does not read."""
        idx = self.keys[position]
        if save:
            self.files.save(idx, fingerprint, memory.to_tensors())
        self.held[idx] = memory
        keep = self.needed(position + 1) if position + 1 < len(self.keys) else {self.keys[0]}
        self.held = {k: m for k, m in self.held.items() if k in keep}
        for k in self.files.stored():
            if k not in keep:
                self.files.drop(k)


class InversionCache:
    """Inverted start latents per key frame (``init="inversion"``), computed by ``sampler.invert``."""

    def __init__(self, keys_dir: Path, options: str, sampler):
        self.files = TensorFiles(keys_dir / "inversion")
        self.options, self.sampler = options, sampler

    def latent(self, i: int, frame: np.ndarray, conds: list[np.ndarray]):
        fp = digest([self.options, array_digest(frame), *(array_digest(c) for c in conds)])
        cached = self.files.load(i, fp)
        if cached is not None:
            return cached["latent"]
        latent = self.sampler.invert(frame, conds)
        self.files.save(i, fp, {"latent": latent.detach().contiguous().cpu()})
        return latent


# ------------------------------------------------------------------------------------------------
# fusion flows


class FusionGeometry:
    """Flows and occlusion masks from a key to its anchor and previous key for the shape- and
    pixel-aware fusions (identity when both are off). With ``cfg.raft_weights`` the long jumps between
    key frames (where DIS is weakest) use RAFT flow, cached in ``flow_dir``."""

    def __init__(self, cfg: KeyframeConfig, inputs: StageInputs, flow: FlowFn | None, occlusion: Callable | None,
                 flow_dir: Path, device: str):
        self.cfg, self.inputs, self.flow = cfg, inputs, flow
        self.fused = cfg.shape_fusion or cfg.pixel_fusion
        if occlusion is None and self.fused:
            from rerender import occlusion as default_occlusion

            occlusion = default_occlusion
        self.occlusion = occlusion
        if cfg.raft_weights and self.fused:
            from rerender.flow import FlowCache
            from rerender.raft import RaftFlow

            raft = RaftFlow(cfg.raft_weights, allow_pickle=cfg.allow_pickle, device=device, iters=cfg.raft_iters)
            cache = FlowCache(flow_dir, raft)
            self.flow = lambda a, b: cache.get(a, b, inputs.frame(a), inputs.frame(b))

    def __call__(self, i: int, anchor: int, prev: int):
        from .sampler import Geometry

        h, w = self.inputs.frame(i).shape[:2]
        if not self.fused:
            return Geometry.identity(h, w)
        flow, occlusion = self.flow, self.occlusion
        if flow is None:
            raise ValueError("flow: a flow function is needed for shape-/pixel-aware fusion")
        fa, fa_back = flow(i, anchor), flow(anchor, i)
        fp, fp_back = (fa, fa_back) if prev == anchor else (flow(i, prev), flow(prev, i))
        return Geometry(fa, occlusion(fa, fa_back), fp, occlusion(fp, fp_back))


# ------------------------------------------------------------------------------------------------
# outputs


class KeyManifest:
    """The stage's outputs: ``NNNN.png`` per key and ``keys.json``, each rendered key's fingerprint."""

    def __init__(self, keys_dir: Path):
        self.dir = keys_dir
        self.path = keys_dir / "keys.json"
        self.entries: dict = read_json(self.path) or {}

    def image(self, i: int) -> Path:
        return self.dir / f"{frame_name(i)}.png"

    def done(self, i: int, fingerprint: str) -> bool:
        return self.entries.get(frame_name(i)) == fingerprint and self.image(i).is_file()

    def record(self, i: int, image: np.ndarray, fingerprint: str) -> None:
        """Store key i's image, then its fingerprint (a key is done only once both are written)."""
        from rerender.media import write_image

        write_image(self.image(i), image)
        self.entries[frame_name(i)] = fingerprint
        atomic_write_bytes(self.path, json.dumps(self.entries, indent=1, sort_keys=True).encode())


# ------------------------------------------------------------------------------------------------
# the stage


class KeyframeStage:
    """Renders the key frames ``keys`` (absolute indices, anchor first) into ``keys_dir/NNNN.png``.

    ``frames(i)`` returns input frame i (uint8 RGB at the working size). ``flow(a, b)`` returns
    flow_{a->b} (e.g. ``rerender.flow.FlowCache.get``); with ``cfg.raft_weights`` the fusions use RAFT
    flows instead, cached in ``flow_dir`` (default: ``keys_dir``'s parent's ``flow``, i.e. WORK/flow).
    ``occlusion(f_ab, f_ba)`` defaults to ``rerender.occlusion``. ``components``: preloaded
    :class:`models.Components` (else loaded from cfg). ``matte(i)``: uint8 H x W (255 = restyle) or
    None; keys then change only inside it (masked SDEdit, then composited over the input).
    """

    def __init__(self, frames: Callable[[int], np.ndarray], keys: Sequence[int], keys_dir: str | os.PathLike,
                 cfg: KeyframeConfig, *, flow: FlowFn | None = None, occlusion: Callable | None = None,
                 components=None, flow_dir: str | os.PathLike | None = None,
                 matte: Callable[[int], np.ndarray] | None = None):
        if not keys:
            raise ValueError("keys: no key frames to render")
        self.keys, self.cfg, self.components = list(keys), cfg, components
        self.dir = Path(keys_dir)
        self.flow, self.occlusion = flow, occlusion
        self.flow_dir = Path(flow_dir) if flow_dir is not None else self.dir.parent / "flow"
        self.inputs = StageInputs(frames, matte, cfg)

    def options_fingerprint(self) -> str:
        """The options' fingerprint, with the identity of every weight file the keys depend on and the
        reference image's pixels (not only their paths)."""
        fp = digest([self.cfg.fingerprint(), weights.identity(self.cfg.weight_sources())])
        if self.cfg.reference:
            from rerender.media import read_image

            fp = digest([fp, array_digest(read_image(self.cfg.reference))])
        return fp

    def run(self, progress=None, first_only: bool = False, on_key: Callable[[int], None] | None = None) -> StageResult:
        """Render what is not rendered yet. ``first_only``: the anchor only (a preview; its state is kept
        for the full run). ``on_key(i)``: called once per key as soon as ``NNNN.png`` holds its final
        image (kept from an earlier run, or just written), e.g. to start propagating the segments
        next to it."""
        keys = self.keys[:1] if first_only else self.keys
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = KeyManifest(self.dir)
        memories = MemoryStore(self.dir, keys, self.cfg)
        options = self.options_fingerprint()
        fps = self.inputs.fingerprints(keys, options)
        first_todo = next((n for n, i in enumerate(keys) if not manifest.done(i, fps[i])), len(keys))
        result = StageResult(keys=keys, rendered=[], skipped=keys[:first_todo])
        bar = progress.stage("keyframes", len(keys)) if progress is not None else None
        if bar is not None and first_todo:
            bar.update(first_todo)
        if first_todo == len(keys):
            if bar is not None:
                bar.close()
            if not first_only:
                memories.files.clear()
            for i in keys if on_key is not None else ():
                on_key(i)
            return result
        from rerender.media import read_image

        from .sampler import KeyframeSampler

        sampler = KeyframeSampler(self.components or load_components(self.cfg), self.cfg)
        self._colour_reference(sampler, memories.dir, options)
        if first_todo > 0 and not memories.restore(first_todo, fps, lambda i: read_image(manifest.image(i)),
                                                   sampler.cache_device):
            first_todo = 0  # the state is gone: render the chain again (deterministic, same result)
            result.skipped = []
            if bar is not None:
                bar.close()
                bar = progress.stage("keyframes", len(keys))
        for i in keys[:first_todo] if on_key is not None else ():  # kept from an earlier run
            on_key(i)
        t0 = time.perf_counter()
        try:
            render = _KeyRenderer(self, sampler, memories, more_later=first_only and len(self.keys) > 1)
            for n in range(first_todo, len(keys)):
                self._finish_key(n, render(n), manifest, fps, memories, render.keeps_memory(n))
                result.rendered.append(keys[n])
                if bar is not None:
                    bar.update(1)
                if on_key is not None:
                    on_key(keys[n])
        finally:
            if bar is not None:
                bar.close()
            sampler.release()
        if result.rendered:
            result.seconds_per_key = (time.perf_counter() - t0) / len(result.rendered)
        if not first_only:
            memories.files.clear()  # every key exists: the attention caches are not needed any more
        memories.held.clear()
        return result

    def _colour_reference(self, sampler, folder: Path, options: str) -> None:
        """Colour correction: the inputs take the chroma of a frame generated from noise (kept beside
        the memories while the stage runs)."""
        if not self.cfg.color_correction:
            return
        from rerender.media import read_image, write_image

        path = folder / f"color_{options}.png"
        if path.is_file():
            self.inputs.colour_reference = read_image(path)
            return
        a = self.keys[0]
        frame = self.inputs.frame(a)
        ref = sampler.generate(frame, self.inputs.conditions(a, sampler.c), self.cfg.prompts_for(a))
        write_image(path, ref)
        self.inputs.colour_reference = ref

    def _finish_key(self, n: int, res, manifest: KeyManifest, fps: dict[int, str], memories: MemoryStore,
                    keep_memory: bool) -> None:
        """Store key n (composited over the input outside the matte) and the memories later keys read."""
        i = memories.keys[n]
        image, matte = res.image, self.inputs.matte(i)
        if matte is not None:  # outside the matte the key is the input's, exactly
            from rerender.matte import composite

            image = composite(res.image, self.inputs.frame(i), matte.astype(np.float32) / 255.0)
        manifest.record(i, image, fps[i])
        memories.keep(n, fps[i], res.memory, save=keep_memory and self.cfg.save_state)


class _KeyRenderer:
    """The sampler call for the n-th key: its start latent, conditions, prompts and the memories and
    geometry of its references."""

    def __init__(self, stage: KeyframeStage, sampler, memories: MemoryStore, more_later: bool):
        cfg = stage.cfg
        self.cfg, self.sampler, self.memories, self.more_later = cfg, sampler, memories, more_later
        self.inputs = stage.inputs
        options = digest([cfg.inversion_fingerprint(), weights.identity(cfg.weight_sources(inversion=True))])
        self.inversions = InversionCache(stage.dir, options, sampler) if cfg.init == "inversion" else None
        self.geometry = FusionGeometry(cfg, stage.inputs, stage.flow, stage.occlusion, stage.flow_dir,
                                       str(sampler.c.device))

    def keeps_memory(self, n: int) -> bool:
        """Whether a later key (or the full run after a preview) reads key n's memory."""
        return n + 1 < len(self.memories.keys) or self.more_later

    def __call__(self, n: int):
        keys, held, i = self.memories.keys, self.memories.held, self.memories.keys[n]
        frame = self.inputs.source(i)
        conds = self.inputs.conditions(i, self.sampler.c)
        init = self.inversions.latent(i, frame, conds) if self.inversions is not None else None
        options = dict(keep_memory=self.keeps_memory(n), prompts=self.cfg.prompts_for(i), init_latent=init)
        if n == 0:
            return self.sampler.render(frame, conds, matte=self.inputs.matte(i), **options)
        a, prev = keys[self.cfg.segment_anchor(n)], keys[n - 1]
        return self.sampler.render(frame, conds, held[a], held[prev], self.geometry(i, a, prev),
                                   origin=held[keys[0]], matte=self.inputs.matte(i), **options)


def render_keys(frames: Callable[[int], np.ndarray], keys: Sequence[int], keys_dir: str | os.PathLike,
                cfg: KeyframeConfig, *, progress=None, first_only: bool = False,
                on_key: Callable[[int], None] | None = None, **parts) -> StageResult:
    """``KeyframeStage(frames, keys, keys_dir, cfg, **parts).run(progress, first_only, on_key)``;
    ``parts``: the stage's ``flow``, ``occlusion``, ``components``, ``flow_dir``, ``matte``."""
    return KeyframeStage(frames, keys, keys_dir, cfg, **parts).run(progress, first_only, on_key)
