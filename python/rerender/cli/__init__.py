"""The ``rerender`` command line (also ``python -m rerender``).

Commands, one module each: ``propagate`` (:mod:`.propagate`: your key frames -> every frame),
``run`` and ``keyframes`` (:mod:`.diffusion`: key frames by diffusion), ``metrics`` and ``demo``
(:mod:`.tools`), ``ofx`` (:mod:`.ofx`: the OpenFX plugin). Options shared by the commands are
declared once in :mod:`.common`. Every command only parses its arguments and calls
:mod:`rerender.pipeline` (or the tool it names). SIGTERM stops a command exactly like Ctrl-C
(workers stopped, lock released, finished work kept) and exits 143.
"""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from ..native import require_native
from ..progress import Progress
from . import diffusion, ofx, propagate, tools
from .common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, PROGRESS_HELP, PROGRESS_MODES, Formatter, Parser, UsageError

__all__ = ["main", "run", "build_parser", "EXIT_ERROR", "EXIT_USAGE", "EXIT_INTERRUPTED", "EXIT_TERMINATED"]

EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (the Blender add-on's Cancel, a render farm's stop) as a KeyboardInterrupt in the main
    thread: every stage stops its workers, releases the work directory and keeps what is finished
    exactly as on Ctrl-C."""


@contextlib.contextmanager
def _sigterm_interrupts():
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop: a repeated TERM must not cut the clean-up short
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(
        prog="rerender", formatter_class=Formatter,
        description="Zero-shot text-guided video-to-video translation: key frames (diffusion or hand-painted) "
                    "are propagated to every frame by guided PatchMatch and temporal-aware blending.")
    parser.add_argument("--version", action="version", version=f"rerender {__version__}")
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="human", help=PROGRESS_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (propagate, diffusion, tools, ofx):
        module.add(sub)
    return parser


def _json_requested(argv: list[str]) -> bool:
    return any(a == "--progress=json" or (a == "--progress" and b == "json") for a, b in zip(argv, argv[1:] + [""]))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rerender`` command; returns (and, as a script, exits with) the status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as e:
        if _json_requested(argv):
            Progress("json").error(str(e))
        else:
            print(f"rerender: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    reporter = args.reporter = Progress(args.progress)
    try:
        with _sigterm_interrupts():
            require_native()  # a refused RERENDER_SIMD is named here, before any work
            status = args.func(args)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Terminated)
        reporter.error("interrupted (intermediate results are kept; rerun the same command to resume)")
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED
    except (ValueError, OSError) as e:  # user errors: bad files, options, inputs
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
