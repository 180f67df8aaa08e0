"""What every ``rerender`` command shares: the parser class, the options of the job (declared once),
option files, and how errors become exit codes.

User errors (bad files, options, frame ranges) print ``rerender: error: MESSAGE`` -- or a JSON error
event with ``--progress json`` -- and exit with status 2 (1 for other failures, 130 when interrupted);
never a traceback. Whatever a job already produced stays in its work directory.
"""
from __future__ import annotations

import argparse
import contextlib
from typing import Any, Iterator

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

PROGRESS_MODES = ("human", "json", "quiet")
PROGRESS_HELP = "progress display: tqdm bars on stderr (human), JSON lines on stdout (json) or nothing (quiet)"


class Formatter(argparse.RawDescriptionHelpFormatter):
    pass


class UsageError(ValueError):
    """A command-line usage error (unknown option, missing argument)."""


class Parser(argparse.ArgumentParser):
    # raise instead of exiting so that main() reports usage errors like every other error
    # (plain text or a JSON error event)
    def error(self, message: str):
        where = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        raise UsageError(where + message)


def progress_parent() -> argparse.ArgumentParser:
    """``--progress``, accepted after the subcommand too; SUPPRESS keeps the global value when absent."""
    p = Parser(add_help=False)
    p.add_argument("--progress", choices=PROGRESS_MODES, default=argparse.SUPPRESS, help=PROGRESS_HELP)
    return p


def add_command(sub, name: str, **kw) -> Parser:
    return sub.add_parser(name, parents=[progress_parent()], formatter_class=Formatter, **kw)


def add_job_options(p: argparse.ArgumentParser, *, output_required: bool = True) -> None:
    """The options of the job (rerender.job.JobConfig), the same for every command that runs one."""
    p.add_argument("-o", "--output", required=output_required, default=None, metavar="OUT",
                   help="output video file (the input's fps, sound and timecode), folder (frames named and "
                        "numbered like the input sequence, or OUT/NNNN.png for a video) or pattern (out/shot.####.png)")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="let the output replace existing files that rerender did not write for it (by default "
                        "they are refused: only a file an earlier run of this output wrote is replaced)")
    p.add_argument("--work-dir", metavar="DIR", default=None,
                   help="intermediate files (frames, flow, key frames, candidates); default: OUT.work")
    p.add_argument("--frames", metavar="A:B", default=None,
                   help="frame range, zero-based, B exclusive, either side optional (e.g. 10:50, :100)")
    p.add_argument("--size", type=int, metavar="N", default=None,
                   help="working resolution: short side in pixels, rounded to a multiple of 8 "
                        "(default: input size; at most 8192)")
    p.add_argument("--flow", choices=("dis", "deepflow"), default=None,
                   help="optical flow: OpenCV DIS (fast, default) or DeepFlow (slower, more accurate)")
    p.add_argument("--no-audio", dest="audio", action="store_false", default=None,
                   help="do not carry the input's sound into a video output")
    p.add_argument("--matte", metavar="PATH", default=None,
                   help="restyle only inside this matte (video, image sequence or single image; white = restyle; "
                        "alpha if it has one, else luminance); the rest stays the plate's, exactly")
    p.add_argument("--matte-feather", type=float, metavar="PX", default=None,
                   help="soft edge of the matte when compositing over the plate, in pixels (default 0)")
    p.add_argument("--alpha", action="store_true", default=None,
                   help="write RGBA frames with the matte as alpha instead of compositing over the plate "
                        "(straight alpha in PNG/TIFF, premultiplied in EXR)")
    p.add_argument("--ocio", metavar="CONFIG", default=None,
                   help="OpenColorIO config (file or ocio:// URI; default $OCIO) for the plate's colour space; "
                        "without one, float plates (EXR) are scene-linear Rec.709 seen through the sRGB curve")
    p.add_argument("--colorspace", metavar="NAME", default=None,
                   help="the plate's colour space in the OCIO config (default: its scene_linear role)")
    p.add_argument("--keep-intermediates", action="store_true", default=None,
                   help="keep finished segments' candidates, masks and flows (about 10x the output's size per "
                        "frame): a later change of a blending option then re-blends instead of re-synthesising")
    p.add_argument("--config", metavar="FILE", default=None,
                   help="YAML/JSON option file, flat or in sections job:, keyframes:, propagation:; "
                        "command-line flags override it")


def job_overrides(args) -> dict[str, Any]:
    return {k: getattr(args, k, None) for k in ("frames", "size", "flow", "work_dir", "audio", "matte",
                                                 "matte_feather", "alpha", "ocio", "colorspace",
                                                 "keep_intermediates", "overwrite")}


def add_cluster_option(p: argparse.ArgumentParser) -> None:
    """``--scheduler``: run the propagation's segments on a Dask cluster."""
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="propagate on a Dask distributed cluster: the scheduler's address, e.g. tcp://HOST:8786 "
                        "(pip install \"rerender[cluster]\"; every worker must see the work directory at the "
                        "same path)")


@contextlib.contextmanager
def cluster_client(address: str | None) -> Iterator[Any]:
    """A client of the Dask scheduler at ``address`` for the block, or None without one (and then
    Dask is not imported)."""
    if address is None:
        yield None
        return
    try:
        from ..cluster import connect
    except ImportError as e:
        raise ValueError(f"--scheduler: {e}") from None
    client = connect(address)
    try:
        yield client
    finally:
        client.close()


def load_configs(args, stages: tuple[str, ...], stage_overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The configurations of ``stages`` from ``--config`` and the flags (flags win)."""
    from ..pipeline import load_configs

    job = {**job_overrides(args), **stage_overrides.pop("job", {})}
    return load_configs(args.config, stages, {"job": job, **stage_overrides})
