"""Writing a job's result: ``WORK/out`` to a video, a folder or a pattern, at the plate's depth, in
its colour space, composited over the plate through the matte (or with the matte as alpha).

What each format holds (depths, alpha, codec, muxer) is the table of
:mod:`rerender.media.formats`; this module decides, per job, which of it to use and checks the
output before any work (:func:`check_target`). Final files are flushed to disk before they take
their names.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import media
from .errors import JobError
from .files import bytes_digest, content_digest, read_entry, remove_stale_temporaries, write_bytes_if_changed
from .matte import composite, feather
from .media.formats import holds_alpha
from .progress import Progress

if TYPE_CHECKING:  # the job imports this module
    from .job import Job


def output_depth(extension: str, plate: str) -> str:
    """The pixel type written to a file of ``extension`` for a plate of type ``plate``: the plate's
    own when the format holds it, else the closest it does (float -> float32/float16/uint16/uint8).
    Integer plates written as EXR keep their display-referred values (their colour space, identity
    unless ``--colorspace`` names one)."""
    order = {"uint8": ("uint8", "float16", "float32"), "uint16": ("uint16", "float32", "uint8"),
             "float16": ("float16", "float32", "uint16", "uint8"),
             "float32": ("float32", "float16", "uint16", "uint8")}[plate]
    for dtype in order:
        try:
            media.check_writable("x" + extension, dtype)
            return dtype
        except media.MediaError:
            continue
    media.check_writable("x" + extension, plate)  # raises, naming the extension
    return plate


def default_extension(info: media.MediaInfo, depth: str, alpha: bool = False) -> str:
    """Frames of a folder output take the input sequence's extension when it holds the plate's depth
    (EXR in, EXR out) and, with ``alpha``, an alpha channel; else PNG (float plates: EXR)."""
    if info.is_sequence:
        ext = info.files[0].suffix.lower()
        if output_depth(ext, depth) == depth and (holds_alpha(ext) or not alpha):
            return ext
    return ".exr" if depth.startswith("float") else ".png"


def check_target(output: str | os.PathLike, depth: str, alpha: bool) -> None:
    """Raise :class:`JobError` / :class:`rerender.media.MediaError` for an output that cannot hold
    what the job writes (checked before any work)."""
    if media.is_video_path(output) and alpha:
        raise JobError(f"{output}: --alpha writes RGBA frames; give an image output (a folder, or a "
                       "pattern such as out/shot.####.png or .exr)")
    pattern = media.parse_output_pattern(output)
    if pattern:
        target = Path(pattern[1] + "0" + pattern[3])
        media.check_writable(target, output_depth(target.suffix, depth))
        if alpha and not holds_alpha(target.suffix):
            raise JobError(f"{output}: {target.suffix} cannot hold the alpha channel --alpha writes; "
                           "use .png, .tif or .exr")


def planned_files(job: "Job", output: str | os.PathLike) -> list[Path]:
    """The files writing ``output`` will create or replace: the video, or every frame's file."""
    if media.is_video_path(output):
        return [Path(output)]
    ext = default_extension(job.info, job.depth, alpha=job.cfg.alpha)
    return list(media.output_frame_paths(output, job.frames, job.info.numbering, extension=ext).values())


def check_replaced(job: "Job", output: str | os.PathLike) -> None:
    """Refuse (:class:`JobError`) an output that would replace a file rerender did not write there.
    Replaced without ``--overwrite`` are only files that the job's work directory records as written
    by rerender (same name and bytes: the project may have been moved or copied with its work
    directory) or as being written here by a run that stopped."""
    record = _record(job)
    written = {(os.path.basename(k), v) for k, v in record.items() if v is not None}

    def ours(p: Path) -> bool:
        return record.get(os.path.realpath(p), "") is None or (p.name, content_digest(p)) in written

    foreign = [p for p in planned_files(job, output) if os.path.lexists(p) and not ours(p)]
    if not foreign:
        return
    more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
    where = "another output file" if media.is_video_path(output) else "a new or empty output folder"
    raise JobError(f"{foreign[0]}{more}: exists and was not written by rerender for this output (no record of it "
                   f"in the work directory {job.wd.root}); pass --overwrite to replace it, or choose {where}")


def _record(job: "Job") -> dict[str, str | None]:
    """Real path -> content digest of the output files rerender wrote (None: being written)."""
    if not job.wd.is_claimed():
        return {}
    record = job.wd.manifest().get("outputs")
    return record if isinstance(record, dict) else {}


def _recording(job: "Job", files: list[Path], written: bool, known: dict[Path, str] | None = None) -> None:
    """Record ``files`` in the work directory: before writing (digest None, so that a stopped write
    may be finished by the next run) and after (their digests: ``known`` holds those of the bytes
    as written, the others are read back)."""
    record = dict(_record(job))
    known = known or {}
    for p in files:
        record[os.path.realpath(p)] = (known.get(p) or content_digest(p)) if written else None
    job.wd.update_manifest(outputs=record)


def write_output(job: "Job", output: Path, progress: Progress) -> list[Path]:
    """``WORK/out`` to a video (the input's fps and timecode; its sound unless the job says no), a
    folder, or a pattern such as ``out/shot.####.png`` (named and numbered like the input
    sequence: :func:`rerender.media.output_frame_paths`), recorded in the work directory (what
    :func:`check_replaced` lets a later run replace). Returns the files written."""
    files = planned_files(job, output)
    _recording(job, files, written=False)
    digests: dict[Path, str] = {}
    written = _write(job, output, progress, digests)
    _recording(job, written, written=True, known=digests)
    return written


def _write(job: "Job", output: Path, progress: Progress, digests: dict[Path, str]) -> list[Path]:
    """Frames are written at the plate's depth where the format allows (:func:`output_depth`);
    ``digests`` receives those of the frame files written."""
    if not media.is_video_path(output):
        return _write_frames(job, output, progress, digests)
    sel, info = job.frames, job.info
    remove_stale_temporaries(output.parent, targets=[output.name])
    source = info.path if job.cfg.audio and info.has_audio else None
    if source is not None and (problem := media.audio_problem(source)):
        progress.log(f"warning: {problem}; writing the video without sound")
        source = None
    whole = sel.start == 0 and sel.stop == info.frame_count

    def encode(audio_from) -> None:
        def frames():
            with progress.stage("write", len(sel)) as bar:
                for i in sel:
                    yield final_frame(job, i, "uint8")[0]
                    bar.update()

        media.write_video(frames(), output, info.fps, audio_from=audio_from,
                          audio_start=float(sel.start / info.fps),
                          audio_duration=None if whole else float(len(sel) / info.fps), fsync=True,
                          timecode=info.timecode and media.timecode_offset(info.timecode, sel.start, info.fps))

    try:
        encode(source)
    except media.AudioError as e:
        if source is None:
            raise
        progress.log(f"warning: {e}; writing the video without sound")
        encode(None)
    return [output]


def _write_frames(job: "Job", output: Path, progress: Progress, digests: dict[Path, str]) -> list[Path]:
    ext = default_extension(job.info, job.depth, alpha=job.cfg.alpha)
    targets = media.output_frame_paths(output, job.frames, job.info.numbering, extension=ext)
    folder = next(iter(targets.values())).parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder, targets=[t.name for t in targets.values()])
    with progress.stage("write", len(targets)) as bar:
        for i, target in targets.items():
            data = _encoded_as_output(job, i, target)
            if data is None:
                rgb, alpha = final_frame(job, i, output_depth(target.suffix, job.depth))
                keep_alpha = alpha is not None and holds_alpha(target.suffix)
                media.write_image(target, rgb, alpha=alpha if keep_alpha else None, fsync=True, if_changed=True)
            else:
                write_bytes_if_changed(target, data, fsync=True)
                digests[target] = bytes_digest(data)
            bar.update()
    return list(targets.values())


def _encoded_as_output(job: "Job", i: int, target: Path) -> bytes | None:
    """The bytes of output frame i when ``WORK/out`` already holds them, else None (the frame is
    then decoded and encoded). An 8-bit PNG output of an 8-bit plate without matte or alpha is the
    restyled frame as it is, and the propagation wrote that with the output's own encoder
    (:func:`rerender.media.encode_png`); a key frame's entry is the key file, encoded by whoever
    wrote it, so keys are encoded again."""
    if (target.suffix.lower() != ".png" or job.depth != "uint8" or job.matte is not None or job.plate_alpha
            or job.wd.key_path(i).exists()):
        return None
    return read_entry(job.wd.out_path(i))


def final_frame(job: "Job", i: int, dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Output frame i as (RGB, alpha or None) of ``dtype``: the restyled frame back in the plate's
    colour space; with a matte, composited over the plate (its pixels exact where the matte is
    0) or, with ``alpha``, carrying the feathered matte as alpha (premultiplied for EXR). A
    plate's own alpha is kept otherwise."""
    restyled = media.from_working(job.wd.out_frame(i), dtype, job.colour)
    if job.matte is None and not job.plate_alpha:
        return restyled, None
    plate, plate_alpha = _plate_at(job, i, dtype)
    if job.matte is None:
        return restyled, plate_alpha
    weight = feather(job.wd.matte(i), job.cfg.matte_feather)
    if not job.cfg.alpha:
        return composite(restyled, plate, weight), plate_alpha
    alpha = _convert_alpha(weight, dtype)
    if dtype.startswith("float"):  # EXR stores colour premultiplied by alpha
        return (restyled.astype(np.float32) * weight[:, :, None]).astype(dtype), alpha
    return restyled, alpha


def _plate_at(job: "Job", i: int, dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The plate's frame i at the working size as ``dtype`` (its own pixels when the depth and
    size match, so that they come back exactly), and its alpha (converted likewise) or None."""
    if not job.info.is_sequence:
        return media.from_working(job.wd.frame(i), dtype, job.colour), None
    rgb, alpha = job.plate_file(i)
    rgb = media.resize_to(rgb, job.hw)
    if str(rgb.dtype) != dtype:
        rgb = media.from_working(media.to_working(rgb, job.colour), dtype, job.colour)
    if alpha is not None:
        alpha = _convert_alpha(media.resize_to(alpha, job.hw), dtype)
    return rgb, alpha


def _convert_alpha(alpha: np.ndarray, dtype: str) -> np.ndarray:
    """An alpha channel of any stored type as ``dtype`` (integer alphas scaled to the full range)."""
    scale = {"uint8": 255.0, "uint16": 65535.0}.get(str(alpha.dtype), 1.0)
    a = alpha.astype(np.float32) / np.float32(scale)
    if dtype in ("uint8", "uint16"):
        top = 255.0 if dtype == "uint8" else 65535.0
        return np.clip(np.rint(a * top), 0, top).astype(dtype)
    return a.astype(dtype)
