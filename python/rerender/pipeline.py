"""The whole translation as library calls; the command line only parses arguments and calls these.
The Blender add-on and the OpenFX plugin run the command line (``python -m rerender ... --progress
json``) in a worker process, so they reach these calls through it.

- :func:`translate`: key frames by diffusion, then propagation to every frame (``rerender run``).
- :func:`render_keyframes`: only the key frames, into ``WORK/keys`` (``rerender keyframes``).
- :func:`propagate`: your own key frames to every frame (``rerender propagate``).
- :func:`load_configs`: option files, flat or in sections ``job:``, ``keyframes:``, ``propagation:``.

Each call opens a :class:`rerender.job.Job` (input probed, frames selected, paths checked before
anything is written) and holds the work directory's lock while it runs (progress goes to a
:class:`rerender.progress.Progress`; announcing "done" is the caller's), so a second job on the same
work directory is refused rather than mixed in. Options come in one typed configuration per owner:
:class:`JobConfig` (frames, working size, flow, work dir, sound), :class:`KeyframeConfig` (the
diffusion stage), :class:`PropagationConfig` (synthesis and blending); keyword arguments of these
calls are shortcuts for the job's options.
"""
from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

from . import config as _config
from .errors import ConfigError
from .job import Job, JobConfig, StepHook
from .passes import PropagationConfig
from .progress import QUIET, Progress
from .keyselect import check_cuts
from .propagation import JobResult, check_keys, run_propagation

if TYPE_CHECKING:  # the diffusion stage imports torch; only its config is needed here
    from .keyframes.config import KeyframeConfig
    from .keyframes.stage import StageResult

__all__ = ["JobConfig", "PropagationConfig", "JobResult", "propagate", "translate", "render_keyframes",
           "load_configs"]

SECTIONS = ("job", "keyframes", "propagation")


def _job_config(job: JobConfig | None, options: dict[str, Any]) -> JobConfig:
    if job is not None and options:
        return dataclasses.replace(job, **options)
    return job if job is not None else JobConfig(**options)


def propagate(input: str | os.PathLike, keys: str | os.PathLike, output: str | os.PathLike, *,
              config: PropagationConfig | None = None, job: JobConfig | None = None,
              progress: Progress | None = None, on_step: StepHook | None = None,
              cuts: list[int] | str | None = None, client=None, **job_options) -> JobResult:
    """Propagate the key frames in ``keys`` to every frame of ``input`` and write ``output``.

    ``input``: a video file or an image sequence (folder / pattern). ``keys``: a folder of images named
    by zero-based absolute frame index (``0000.png``, ``0010.png`` ...). ``output``: a video path (the
    input's fps and sound carried over) or a folder receiving ``NNNN.png`` for every selected frame.
    ``job_options``: any :class:`JobConfig` field (``frames="10:50"``, ``size=512``, ``flow``,
    ``work_dir``, ``audio``, ``matte``, ``matte_feather``, ``alpha``, ``ocio``, ``colorspace``,
    ``keep_intermediates``). Rerunning with the same work directory resumes and reuses what is still
    valid. ``on_step(stage, frame)`` is called after every stored frame (from worker threads too);
    raising from it stops the job, which can be resumed later. ``cuts``: shot cuts (first frames of
    later shots) or ``"auto"`` to detect them: nothing is propagated across a cut. ``client``: a
    ``distributed.Client`` to run the segments as tasks of a Dask cluster (:mod:`rerender.cluster`;
    its workers must see the work directory at the same path); None runs them in threads of this process.

    Raises :class:`rerender.errors.JobError` / :class:`rerender.errors.MediaError` (ValueErrors)
    for bad inputs, before anything is written when the inputs themselves are at fault.
    """
    progress = progress or QUIET
    _check_client(client)
    opened = Job.open(input, _job_config(job, job_options), output=output, keys=keys)
    if isinstance(cuts, list):
        check_cuts(cuts, opened.frames, opened.info.frame_count)
    check_keys(opened, keys, cuts)  # before the work directory is created: a refused job leaves nothing
    with opened.wd.lock():
        return run_propagation(opened, keys, output, config or PropagationConfig(), progress, on_step, cuts,
                               client)


def _check_client(client) -> None:
    """A cluster client is a ``distributed.Client`` (checked before any work; Dask is imported only then)."""
    if client is not None:
        from .cluster import check_client

        check_client(client)


def render_keyframes(input: str | os.PathLike, config: "KeyframeConfig", *, job: JobConfig | None = None,
                     output: str | os.PathLike | None = None, progress: Progress | None = None,
                     first_only: bool = False, components=None, **job_options) -> tuple[Job, "StageResult"]:
    """Render the key frames of ``input`` into ``WORK/keys/NNNN.png`` (the work directory of ``job``,
    or ``OUT.work`` for ``output``). Frames are decoded and flows computed into the work directory,
    where the propagation stage finds them again. Returns the opened job and the stage's result."""
    opened = Job.open(input, _job_config(job, job_options), output=output, writes_output=False)
    _check_key_plan(opened, config)
    with opened.wd.lock():
        return opened, _render_keys(opened, config, progress or QUIET, first_only, components)[0]


def _check_key_plan(job: Job, config: "KeyframeConfig") -> None:
    """A key list or plan file that cannot fit the job is refused before the work directory is
    created (``auto`` needs the decoded frames and is planned later)."""
    from .keyselect import plan_keys

    if config.key_frames is None or config.key_frames.strip().lower() != "auto":
        plan_keys(config.key_frames, job.frames, interval=config.interval)


def _render_keys(job: Job, config: "KeyframeConfig", progress: Progress, first_only: bool, components,
                 start_propagation=None):
    """Plan the key frames (printed, and stored as ``WORK/keyplan.json`` for a user to edit), then
    render them shot by shot: every shot gets its own anchor. Returns (stage result, plan).

    ``start_propagation(plan)``: called once the plan is made, before any key is rendered; returns
    the callback to run for each key as it is stored."""
    from .keyframes.stage import StageResult, load_components, render_keys
    from .keyselect import check_shots_have_keys, plan_keys

    try:  # our own progress reporter speaks for the stage; diffusers' loading bars are noise here
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
    except ImportError:
        pass
    job.decode(progress)
    wd = job.wd
    plan = plan_keys(config.key_frames, job.frames, interval=config.interval, frame=wd.frame8,
                     flow=wd.flow_cache.get, spacing=config.key_spacing)
    check_shots_have_keys(plan, job.frames, "--key-frames")
    progress.log(plan.describe())
    plan_path = wd.root / "keyplan.json"
    if config.key_frames is None or not plan_path.exists() or not plan_path.samefile(config.key_frames):
        plan.save(plan_path)  # never rewrite the plan file a user passed in
    if min(job.hw) > 768:
        progress.log(f"working size: the short side is {min(job.hw)} px; Stable Diffusion 1.5 works best near 512 "
                     "(--size 512) and needs far more time and memory above it")
    on_key = start_propagation(plan) if start_propagation is not None else None
    chains = [[k for k in plan.keys if k in shot] for shot in plan.shots(job.frames)]
    if len(chains) > 1 and components is None:
        components = load_components(config)
    total = StageResult(keys=[], rendered=[], skipped=[])
    seconds = 0.0
    for chain in chains[:1] if first_only else chains:
        res = render_keys(wd.frame8, chain, wd.keys, config, flow=wd.flow_cache.get, progress=progress,
                          first_only=first_only, components=components, matte=wd.matte if wd.matted else None,
                          on_key=on_key)
        total.keys += res.keys
        total.rendered += res.rendered
        total.skipped += res.skipped
        seconds += (res.seconds_per_key or 0.0) * len(res.rendered)
    if total.rendered:
        total.seconds_per_key = seconds / len(total.rendered)
    progress.log(f"key frames: {len(total.rendered)} rendered, {len(total.skipped)} reused")
    if total.seconds_per_key is not None:
        progress.log(f"key frames: {total.seconds_per_key:.2f} s per key frame")
    return total, plan


def translate(input: str | os.PathLike, output: str | os.PathLike, *, keyframes: "KeyframeConfig",
              propagation: PropagationConfig | None = None, job: JobConfig | None = None,
              progress: Progress | None = None, first_only: bool = False, components=None, client=None,
              **job_options) -> tuple["StageResult", JobResult | None]:
    """The whole translation: key frames by diffusion (``keyframes``: prompt, models, constraints),
    then propagation to every frame of ``output``. ``first_only``: render only the anchor key as a
    preview and stop. Both stages share one work directory (frames decoded once, flows computed
    once) and hold its lock throughout. Returns the key-frame stage's result and the job's
    (None for a preview).

    ``client``: a ``distributed.Client``: the key frames are still rendered here, in order (each
    needs the anchor and the previous key), while the cluster propagates every segment as soon as
    both its keys exist.
    """
    progress = progress or QUIET
    _check_client(client)
    opened = Job.open(input, _job_config(job, job_options), output=output)
    _check_key_plan(opened, keyframes)
    propagation = propagation or PropagationConfig()
    with opened.wd.lock():
        if client is None or first_only:
            keys, plan = _render_keys(opened, keyframes, progress, first_only, components)
            if first_only:
                return keys, None
            return keys, run_propagation(opened, opened.wd.keys, output, propagation, progress, cuts=plan.cuts)
        from .propagation import KeyStream

        stream: list[KeyStream] = []

        def start(plan):
            stream.append(KeyStream(opened, plan.keys, propagation, progress, client, cuts=plan.cuts))
            return stream[0].key_ready

        try:
            keys, _ = _render_keys(opened, keyframes, progress, False, components, start_propagation=start)
            return keys, stream[0].finish(output)
        except BaseException:
            if stream:
                stream[0].stop()  # no task may write into the work directory once its lock is released
            raise


def load_configs(path: str | os.PathLike | None, stages: tuple[str, ...],
                 overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Options of ``stages`` (names from ``SECTIONS``) from an option file and overrides.

    The file (YAML or JSON) is either sectioned (top-level keys ``job``, ``keyframes``,
    ``propagation``) or flat: a flat file's keys go to the job when they are job options and to the
    one stage of ``stages`` otherwise (``rerender run`` reads a flat file as key-frame options).
    ``overrides``: per stage, values that win over the file (e.g. command-line flags; None values
    are ignored). Unknown keys are errors naming the file and the key.
    """
    classes = {"job": JobConfig, "propagation": PropagationConfig}
    if "keyframes" in stages:
        from .keyframes.config import KeyframeConfig

        classes["keyframes"] = KeyframeConfig
    data = _config.read_mapping(path) if path is not None else {}
    where = str(path) if path is not None else "config"
    sectioned = bool(data) and set(data) <= set(SECTIONS)
    if sectioned:
        extra = [s for s in data if s not in stages]
        if extra:
            raise ConfigError(f"{where}: section {extra[0]!r} is not used by this command (it reads "
                              f"{', '.join(stages)})")
        parts = {s: dict(data.get(s) or {}) for s in stages}
    else:
        stage = next(s for s in stages if s != "job")
        job_keys = {f.name for f in dataclasses.fields(JobConfig)}
        parts = {"job": {k: v for k, v in data.items() if k.replace("-", "_") in job_keys},
                 stage: {k: v for k, v in data.items() if k.replace("-", "_") not in job_keys}}
        parts.update({s: {} for s in stages if s not in parts})
    out = {}
    for s in stages:
        values = parts[s]
        values.update({k: v for k, v in (overrides or {}).get(s, {}).items() if v is not None})
        out[s] = _config.from_dict(classes[s], values, f"{where}:{s}" if sectioned else where)
    return out
