"""What every ``rerender`` command shares: the parser class, the options of the job (declared once),
option files, and how errors become exit codes.

User errors (bad files, options, frame ranges) print ``rerender: error: MESSAGE`` -- or a JSON error
event with ``--progress json`` -- and exit with status 2 (1 for other failures, 130 when interrupted);
never a traceback. Whatever a job already produced stays in its work directory.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import textwrap
from typing import Any, Iterator

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

PROGRESS_MODES = ("human", "json", "quiet")
PROGRESS_HELP = "progress display: tqdm bars on stderr (human), JSON lines on stdout (json) or nothing (quiet)"


# The option groups of every command's --help, in this order (README "Command line" groups them alike).
# An option joins one with ``group(parser, NAME).add_argument(...)``.
GROUPS = ("input/output", "model", "key frames", "constraints", "memory", "propagation", "general")


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Help with every option's default: a configuration field's default (see :func:`config_defaults`),
    else argparse's own default when there is one; required options say so."""

    config_defaults: dict[str, Any] = {}

    def _split_lines(self, text: str, width: int) -> list[str]:
        # hub ids and file names stay whole (stable-diffusion-v1-5/... is not split at its hyphens)
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.help is argparse.SUPPRESS or not action.option_strings or action.dest == "help":
            return text
        if action.required:
            return text + " (required)"
        if action.dest in self.config_defaults:
            shown = show_default(self.config_defaults[action.dest])
        elif action.default not in (None, argparse.SUPPRESS):
            shown = show_default(action.default)
        else:
            return text
        if shown is None or "required" in text:
            return text
        if isinstance(action, argparse._StoreFalseAction) and shown in ("on", "off"):  # --no-X: say what X is
            shown = f"{action.dest.replace('_', ' ')} {shown}"
        return f"{text} (default: {shown.replace('%', '%%')})"


def show_default(value: Any) -> str | None:
    """How a default reads in --help; None: nothing to show (the help says what its absence means)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return " ".join(show_default(v) or "" for v in value)
    if isinstance(value, list):
        return ", ".join(show_default(v) or "" for v in value) or "none"
    return str(value)


def config_defaults(*configs: str) -> dict[str, Any]:
    """``field -> default`` of the configuration dataclasses named ``module:Class`` (the first one
    holding a name wins): what a flag of the same destination shows in --help. Imported only when help
    is shown, so that parsing stays cheap."""
    out: dict[str, Any] = {}
    for name in configs:
        module, _, attr = name.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out.setdefault(f.name, f.default)
            elif f.default_factory is not dataclasses.MISSING:
                out.setdefault(f.name, f.default_factory())
    return out


class UsageError(ValueError):
    """A command-line usage error (unknown option, missing argument)."""


class Parser(argparse.ArgumentParser):
    configs: tuple[str, ...] = ()  # the configuration dataclasses behind its options, as module:Class

    # raise instead of exiting so that main() reports usage errors like every other error
    # (plain text or a JSON error event)
    def error(self, message: str):
        where = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        raise UsageError(where + message)

    def _get_formatter(self):
        formatter = super()._get_formatter()
        formatter.config_defaults = config_defaults(*self.configs)
        return formatter


def group(p: argparse.ArgumentParser, name: str):
    """The option group ``name`` (one of GROUPS) of a command's parser."""
    for g in p._action_groups:
        if g.title == name:
            return g
    raise KeyError(f"{p.prog}: no option group {name!r} (known: {', '.join(GROUPS)})")


def add_command(sub, name: str, *, configs: tuple[str, ...] = (), **kw) -> Parser:
    """A command's parser with the option groups of GROUPS (empty ones are not shown) and ``--progress``;
    options whose destination is a field of ``configs`` show that field's default in --help."""
    p = sub.add_parser(name, formatter_class=Formatter, **kw)
    for title in GROUPS:
        p.add_argument_group(title)
    p.configs = configs
    # accepted after the subcommand too; SUPPRESS keeps the global value when absent
    group(p, "general").add_argument("--progress", choices=PROGRESS_MODES, default=argparse.SUPPRESS,
                                     help=f"{PROGRESS_HELP} (default: {PROGRESS_MODES[0]})")
    return p


def add_job_options(p: argparse.ArgumentParser, *, output_required: bool = True) -> None:
    """The options of the job (rerender.job.JobConfig), the same for every command that runs one."""
    io = group(p, "input/output")
    io.add_argument("-o", "--output", required=output_required, default=None, metavar="OUT",
                    help="output video file (the input's fps, sound and timecode), folder (frames named and "
                         "numbered like the input sequence, or OUT/NNNN.png for a video) or pattern (out/shot.####.png)"
                         + ("" if output_required else "; default: none, key frames only"))
    io.add_argument("--overwrite", action="store_true", default=None,
                    help="let the output replace existing files that rerender did not write for it (without it "
                         "they are refused: only a file an earlier run of this output wrote is replaced)")
    io.add_argument("--work-dir", metavar="DIR", default=None,
                    help="intermediate files (frames, flow, key frames, candidates); default: OUT.work")
    io.add_argument("--frames", metavar="A:B", default=None,
                    help="frame range, zero-based, B exclusive, either side optional (e.g. 10:50, :100); "
                         "default: every frame")
    io.add_argument("--size", type=int, metavar="N", default=None,
                    help="working resolution: short side in pixels, rounded to a multiple of 8, at most 8192 "
                         "(default: the input's size)")
    io.add_argument("--no-audio", dest="audio", action="store_false", default=None,
                    help="do not carry the input's sound into a video output")
    io.add_argument("--matte", metavar="PATH", default=None,
                    help="restyle only inside this matte (video, image sequence or single image; white = restyle; "
                         "alpha if it has one, else luminance); the rest stays the plate's, exactly (default: none, "
                         "the whole frame)")
    io.add_argument("--matte-feather", type=float, metavar="PX", default=None,
                    help="soft edge of the matte when compositing over the plate, in pixels")
    io.add_argument("--alpha", action="store_true", default=None,
                    help="write RGBA frames with the matte as alpha instead of compositing over the plate "
                         "(straight alpha in PNG/TIFF, premultiplied in EXR)")
    io.add_argument("--ocio", metavar="CONFIG", default=None,
                    help="OpenColorIO config (file or ocio:// URI) for the plate's colour space; default: $OCIO, "
                         "or without one float plates (EXR) are scene-linear Rec.709 seen through the sRGB curve")
    io.add_argument("--colorspace", metavar="NAME", default=None,
                    help="the plate's colour space in the OCIO config (default: its scene_linear role)")
    group(p, "propagation").add_argument(
        "--flow", choices=("dis", "deepflow"), default=None,
        help="optical flow: OpenCV DIS (fast) or DeepFlow (slower, more accurate)")
    group(p, "memory").add_argument(
        "--keep-intermediates", action="store_true", default=None,
        help="keep finished segments' candidates, masks and flows (about 10x the output's size per "
             "frame): a later change of a blending option then re-blends instead of re-synthesising")
    group(p, "general").add_argument(
        "--config", metavar="FILE", default=None,
        help="YAML/JSON option file, flat or in sections job:, keyframes:, propagation:; "
             "command-line flags override it (default: none)")


def job_overrides(args) -> dict[str, Any]:
    return {k: getattr(args, k, None) for k in ("frames", "size", "flow", "work_dir", "audio", "matte",
                                                 "matte_feather", "alpha", "ocio", "colorspace",
                                                 "keep_intermediates", "overwrite")}


def add_cluster_option(p: argparse.ArgumentParser) -> None:
    """``--scheduler``: run the propagation's segments on a Dask cluster."""
    group(p, "propagation").add_argument(
        "--scheduler", metavar="ADDRESS", default=None,
        help="propagate on a Dask distributed cluster: the scheduler's address, e.g. tcp://HOST:8786 "
             "(pip install \"rerender[cluster]\"; every worker must see the work directory at the "
             "same path); default: none, this machine")


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
