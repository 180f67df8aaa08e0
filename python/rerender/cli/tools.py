"""``rerender metrics`` (temporal consistency of a result), ``rerender demo`` (the built-in clip) and
``rerender info`` (what this installation has: the first thing a bug report should include)."""
from __future__ import annotations

import json
from pathlib import Path

from .common import add_command, group


def add(sub) -> None:
    p = add_command(
        sub, "metrics",
        help="temporal consistency of a result (warp error of consecutive frames)",
        description="Measure the temporal consistency of OUTPUT: consecutive output frames are aligned with "
                    "the optical flow of INPUT and compared (Pixel-MSE / warp error; occluded pixels excluded). "
                    "Lower is more consistent.")
    io = group(p, "input/output")
    io.add_argument("input", metavar="INPUT", help="the original video or image sequence (its flow is used)")
    io.add_argument("output", metavar="OUTPUT",
                    help="the processed video or image sequence: as many frames as the input, or as --frames selects")
    io.add_argument("--frames", metavar="A:B", default=None,
                    help="input frames the output was made from, zero-based, B exclusive, either side optional "
                         "(as given to `rerender propagate --frames`); default: every frame")
    io.add_argument("--json", metavar="FILE", default=None, help="also write the figures to FILE as JSON")
    group(p, "propagation").add_argument("--flow", choices=("dis", "deepflow"), default="dis",
                                         help="optical flow method")
    p.set_defaults(func=metrics)

    d = add_command(
        sub, "demo",
        help="run the whole propagation on a built-in clip (no downloads, no model weights)",
        description="Generate a short clip (a camera moving over a photograph), stylise every 10th frame with "
                    "a classical OpenCV filter, propagate the style to all frames and write the result, a "
                    "side-by-side preview and a contact sheet.")
    io = group(d, "input/output")
    io.add_argument("-o", "--output", default="rerender-demo", metavar="OUT", help="output folder")
    io.add_argument("--frames", type=int, default=31, metavar="N", help="clip length")
    group(d, "key frames").add_argument("--key-every", type=int, default=10, metavar="K", help="key frame spacing")
    d.set_defaults(func=demo)

    i = add_command(
        sub, "info",
        help="versions, native backends and SIMD path, CUDA, diffusion extras, HED weights, caches",
        description="Describe this installation (paste it into bug reports).")
    group(i, "general").add_argument("--json", action="store_true",
                                     help="print the same as one JSON object (as --progress json's 'info' event holds)")
    group(i, "model").add_argument("--model", default=None, metavar="DIR|FILE",
                                   help="also name the model family of a local diffusers folder or single "
                                        ".safetensors file")
    i.set_defaults(func=info)


def metrics(args) -> int:
    from ..files import atomic_write_bytes
    from ..metrics import report_inputs, temporal_consistency
    from ..overwrite_guard import check_file_target

    from ..job import parse_frame_range

    if args.json is not None:  # before the (long) measurement: neither argument may be replaced
        check_file_target(args.json, report_inputs(args.input, args.output), "--json")
    report = temporal_consistency(args.input, args.output, flow=args.flow, frames=parse_frame_range(args.frames))
    if args.json:
        atomic_write_bytes(Path(args.json), (report.to_json(indent=2) + "\n").encode())
    if args.reporter.mode == "json":
        args.reporter.event("metrics", **report.to_dict())
        args.reporter.done(args.json or args.output)
    else:
        print(report.summary())
    return 0


def demo(args) -> int:
    from ..demo import run_demo

    run_demo(args.output, frames=args.frames, key_every=args.key_every, progress=args.reporter)
    args.reporter.done(args.output)
    return 0


def info(args) -> int:
    from ..info import collect, describe

    report = collect(args.model)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    elif args.reporter.mode == "json":
        args.reporter.event("info", **report)
    else:
        print(describe(report))
    return 0
