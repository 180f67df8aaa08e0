"""The ``rerender`` command line (also ``python -m rerender``).

Subcommands: ``propagate`` (key frames -> every frame), ``metrics`` (temporal consistency), ``demo``
(the whole propagation on a built-in clip); the diffusion stage adds ``keyframes`` and ``run`` through
``rerender.keyframes.cli.add_commands`` when its dependencies (torch, diffusers) are installed.

User errors (bad files, options, frame ranges) print ``rerender: error: MESSAGE`` — or a JSON error
event with ``--progress json`` — and exit with status 2 (1 for other failures, 130 when interrupted);
never a traceback. Whatever a job already produced stays in its work directory.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .progress import Progress

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_EPILOG_PROPAGATE = """\
key frames: images named by zero-based input frame index, e.g. KEYDIR/0000.png, KEYDIR/0010.png
(any spacing, any count >= 1). They are resized to the working size; a different aspect ratio is an
error. Output: OUT ending in a video extension (.mp4, .mov, .mkv, ...) writes a video with the input's
fps and audio; anything else is a folder receiving OUT/NNNN.png for every selected input frame.

resume: intermediate results live in the work directory (default OUT.work). Rerunning the same
command continues a stopped job; after repainting a key frame only the segments next to it are
recomputed.

example:
  rerender propagate shot.mp4 --keys shot_keys/ -o shot_styled.mp4
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


class UsageError(ValueError):
    """A command-line usage error (unknown option, missing argument)."""


class _Parser(argparse.ArgumentParser):
    # raise instead of exiting so that main() reports usage errors like every other error
    # (plain text or a JSON error event)
    def error(self, message: str):
        where = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        raise UsageError(where + message)


def _progress_parent() -> argparse.ArgumentParser:
    # accepted before or after the subcommand; SUPPRESS keeps the global value when not repeated
    p = _Parser(add_help=False)
    p.add_argument("--progress", choices=("human", "json", "quiet"), default=argparse.SUPPRESS,
                   help="progress display: tqdm bars on stderr (human), JSON lines on stdout (json) or "
                        "nothing (quiet)")
    return p


def _add_propagate(sub, parent) -> None:
    p = sub.add_parser(
        "propagate", parents=[parent], formatter_class=_Formatter, epilog=_EPILOG_PROPAGATE,
        help="propagate stylised key frames to every frame of a video (EbSynth-style)",
        description="Propagate stylised key frames to every frame of INPUT by guided patch-based synthesis "
                    "(colour, edge, positional and temporal guides) and temporal-aware blending.")
    p.add_argument("input", metavar="INPUT", help="video file (mp4, mov, avi, mkv, ...) or image sequence "
                   "(a folder, or a pattern such as 'shot/%%04d.png' or 'shot/*.exr')")
    p.add_argument("--keys", required=True, metavar="KEYDIR", help="folder of key frames named by frame index")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output video file or folder")
    p.add_argument("--work-dir", metavar="DIR", default=None,
                   help="intermediate files (frames, flow, candidates, masks); default: OUT.work")
    p.add_argument("--flow", choices=("dis", "deepflow"), default=None,
                   help="optical flow: OpenCV DIS (fast, default) or DeepFlow (slower, more accurate)")
    p.add_argument("--blend", choices=("soft", "select", "linear"), default=None,
                   help="blending of the two candidates: soft weights + temporal filtering + detail (default), "
                        "the paper's selection mask + histogram-preserving blend, or linear by distance")
    p.add_argument("--poisson", action="store_true", default=None,
                   help="add screened Poisson (gradient-domain) blending after the blend")
    p.add_argument("--size", type=int, metavar="N", default=None,
                   help="working resolution: short side in pixels, rounded to a multiple of 8 (default: input size)")
    p.add_argument("--frames", metavar="A:B", default=None,
                   help="frame range, zero-based, B exclusive, either side optional (e.g. 10:50, :100)")
    p.add_argument("--config", metavar="FILE", default=None,
                   help="YAML/JSON file with propagation options (guide weights, PatchMatch settings, ...); "
                        "command-line flags override it")
    p.add_argument("--workers", type=int, metavar="N", default=None,
                   help="propagation passes run in parallel (default: one per CPU core)")
    p.add_argument("--threads", type=int, metavar="N", default=None,
                   help="native threads per synthesis (default: the cores not used by parallel passes; "
                        "results do not depend on it)")
    p.set_defaults(func=_cmd_propagate)


def _add_metrics(sub, parent) -> None:
    p = sub.add_parser(
        "metrics", parents=[parent], formatter_class=_Formatter,
        help="temporal consistency of a result (warp error of consecutive frames)",
        description="Measure the temporal consistency of OUTPUT: consecutive output frames are aligned with "
                    "the optical flow of INPUT and compared (Pixel-MSE / warp error; occluded pixels excluded). "
                    "Lower is more consistent.")
    p.add_argument("input", metavar="INPUT", help="the original video or image sequence (its flow is used)")
    p.add_argument("output", metavar="OUTPUT", help="the processed video or image sequence, same frame count")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the figures to FILE as JSON")
    p.add_argument("--flow", choices=("dis", "deepflow"), default="dis", help="optical flow method (default: dis)")
    p.set_defaults(func=_cmd_metrics)


def _add_demo(sub, parent) -> None:
    p = sub.add_parser(
        "demo", parents=[parent], formatter_class=_Formatter,
        help="run the whole propagation on a built-in clip (no downloads, no model weights)",
        description="Generate a short clip (a camera moving over a photograph), stylise every 10th frame with "
                    "a classical OpenCV filter, propagate the style to all frames and write the result, a "
                    "side-by-side preview and a contact sheet.")
    p.add_argument("-o", "--output", default="rerender-demo", metavar="OUT", help="output folder (default: rerender-demo)")
    p.add_argument("--frames", type=int, default=31, metavar="N", help="clip length (default: 31)")
    p.add_argument("--key-every", type=int, default=10, metavar="K", help="key frame spacing (default: 10)")
    p.set_defaults(func=_cmd_demo)


_OWN_COMMANDS = ("propagate", "metrics", "demo")


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (skipping global options), or None."""
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--progress":
            skip = True
        elif not a.startswith("-"):
            return a
    return None


def build_parser(include_keyframes: bool = True) -> argparse.ArgumentParser:
    """The full ``rerender`` parser; the diffusion commands are added when ``include_keyframes`` and
    importable (their module may pull in torch, so it is skipped for the commands defined here)."""
    from . import __version__

    parent = _progress_parent()
    parser = _Parser(
        prog="rerender", formatter_class=_Formatter,
        description="Zero-shot text-guided video-to-video translation: key frames (diffusion or hand-painted) "
                    "are propagated to every frame by guided PatchMatch and temporal-aware blending.")
    parser.add_argument("--version", action="version", version=f"rerender {__version__}")
    parser.add_argument("--progress", choices=("human", "json", "quiet"), default="human",
                        help="progress display: tqdm bars on stderr (human), JSON lines on stdout (json) or "
                             "nothing (quiet)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_propagate(sub, parent)
    _add_metrics(sub, parent)
    _add_demo(sub, parent)
    add_commands = None
    if include_keyframes:
        try:  # the diffusion stage needs torch; without it the other commands still work
            from .keyframes.cli import add_commands
        except ImportError:
            add_commands = None
    if add_commands is not None:
        add_commands(sub)
    return parser


# ------------------------------------------------------------------------------------------------
# commands: each takes the parsed args (args.reporter is the Progress) and returns an exit status


def _cmd_propagate(args) -> int:
    from . import config
    from .job import run_propagation
    from .propagate import PropagationConfig

    overrides = {"flow": args.flow, "blend": args.blend, "poisson": args.poisson, "size": args.size,
                 "workers": args.workers, "threads": args.threads}
    cfg = config.load(PropagationConfig, args.config, overrides)
    run_propagation(args.input, args.keys, args.output, work_dir=args.work_dir, config=cfg,
                    frames=args.frames, progress=args.reporter)
    return 0


def _cmd_metrics(args) -> int:
    from .job import _atomic_write_bytes
    from .metrics import temporal_consistency

    report = temporal_consistency(args.input, args.output, flow=args.flow)
    if args.json:
        _atomic_write_bytes(Path(args.json), (report.to_json(indent=2) + "\n").encode())
    if args.reporter.mode == "json":
        args.reporter._emit({"event": "metrics", **report.to_dict()})
        args.reporter.done(args.json or args.output)
    else:
        print(report.summary())
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.output, frames=args.frames, key_every=args.key_every, progress=args.reporter)
    args.reporter.done(args.output)
    return 0


def _user_errors() -> tuple[type[BaseException], ...]:
    return (ValueError, OSError)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rerender`` command; returns (and, as a script, exits with) the status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(include_keyframes=_command_of(argv) not in _OWN_COMMANDS)
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        json_mode = any(a == "--progress=json" or (a == "--progress" and b == "json")
                        for a, b in zip(argv, argv[1:] + [""]))
        if json_mode:
            Progress("json").error(str(e))
        else:
            print(f"rerender: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    reporter = Progress(args.progress)
    args.reporter = reporter
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        reporter.error("interrupted (intermediate results are kept; rerun the same command to resume)")
        return EXIT_INTERRUPTED
    except _user_errors() as e:
        message = str(e)
        if isinstance(e, OSError) and e.filename and str(e.filename) not in message:
            message = f"{e.filename}: {e.strerror or message}"
        reporter.error(message or type(e).__name__)
        return EXIT_USAGE
    except Exception as e:  # a bug, not a user error: say so briefly, keep the traceback out of JSON
        if reporter.mode == "json":
            reporter.error(f"internal error: {type(e).__name__}: {e}")
            return EXIT_ERROR
        raise
    return int(status or 0)


def run() -> None:
    sys.exit(main())
