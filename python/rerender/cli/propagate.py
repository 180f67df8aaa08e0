"""``rerender propagate``: your own key frames to every frame (EbSynth-style)."""
from __future__ import annotations

from ..blend_methods import BLEND_METHODS
from .common import add_cluster_option, add_command, add_job_options, cluster_client, group, load_configs

EPILOG = """\
key frames: images named by zero-based input frame index, e.g. KEYDIR/0000.png, KEYDIR/0010.png
(any spacing, any count >= 1). They are resized to the working size; a different aspect ratio is an
error. Output: OUT ending in a video extension (.mp4, .mov, .mkv, ...) writes a video with the input's
fps and audio; anything else is a folder receiving OUT/NNNN.png for every selected input frame.

resume: intermediate results live in the work directory (default OUT.work). Rerunning the same
command continues a stopped job; after repainting a key frame only the segments next to it are
recomputed.

cluster: --scheduler tcp://HOST:8786 runs the segments as tasks of a Dask cluster (dask scheduler /
dask worker ... --nthreads 1); every worker must see the work directory at the same path.

example:
  rerender propagate shot.mp4 --keys shot_keys/ -o shot_styled.mp4
"""


def add(sub) -> None:
    p = add_command(
        sub, "propagate", epilog=EPILOG, configs=("rerender.job:JobConfig", "rerender.passes:PropagationConfig"),
        help="propagate stylised key frames to every frame of a video (EbSynth-style)",
        description="Propagate stylised key frames to every frame of INPUT by guided patch-based synthesis "
                    "(colour, edge, positional and temporal guides) and temporal-aware blending.")
    io = group(p, "input/output")
    io.add_argument("input", metavar="INPUT", help="video file (mp4, mov, avi, mkv, ...) or image sequence "
                    "(a folder, or a pattern such as 'shot/%%04d.png' or 'shot/*.exr')")
    io.add_argument("--keys", required=True, metavar="KEYDIR", help="folder of key frames named by frame index")
    add_job_options(p)
    io.add_argument("--key-numbering", choices=("auto", "index", "frame"), default=None,
                    help="key-frame names count zero-based indices or the sequence's own frame numbers "
                         "(shot.1001.png); auto tells them apart and refuses names that fit both")
    group(p, "propagation").add_argument(
        "--cuts", default=None, metavar="auto|LIST",
        help="shot cuts (first frames of later shots, e.g. 30,76) or 'auto' to detect them: nothing is "
             "propagated across a cut, so every shot needs a key frame (default: none)")
    add_blend_options(p)
    memory = group(p, "memory")
    memory.add_argument("--workers", type=int, metavar="N", default=None,
                        help="propagation passes run in parallel, each holding its segment's frames (0: one per "
                             "CPU core)")
    memory.add_argument("--threads", type=int, metavar="N", default=None,
                        help="native threads per synthesis (0: the cores not used by parallel passes; on a "
                             "cluster 1 per task; results do not depend on it)")
    add_cluster_option(p)
    p.set_defaults(func=run)


def add_blend_options(p) -> None:
    """How the two candidates of a segment are blended (PropagationConfig.blend, .poisson); shared
    by every command that propagates."""
    g = group(p, "propagation")
    g.add_argument("--blend", choices=BLEND_METHODS, default=None,
                   help="blending of the two passes: soft weights + temporal filtering + detail restoration "
                        "(soft: steadier, see README Benchmarks), the paper's selection mask + "
                        "histogram-preserving blend (select), or weights by distance to the keys (linear)")
    g.add_argument("--poisson", action="store_true", default=None,
                   help="add screened Poisson (gradient-domain) blending after the blend")


def blend_flags(args) -> dict:
    return {"blend": args.blend, "poisson": args.poisson}


def parse_cuts(text: str | None) -> list[int] | str | None:
    if text is None or text.strip().lower() in ("", "none"):
        return None
    if text.strip().lower() == "auto":
        return "auto"
    try:
        cuts = sorted({int(t) for t in text.replace(" ", "").split(",") if t})
    except ValueError:
        raise ValueError(f"--cuts: expected 'auto' or frame numbers separated by commas, got {text!r}") from None
    if cuts and cuts[0] < 0:
        raise ValueError(f"--cuts: frame numbers are zero-based and >= 0, got {cuts[0]}")
    return cuts


def run(args) -> int:
    from ..pipeline import propagate

    flags = {**blend_flags(args), "workers": args.workers, "threads": args.threads}
    cfg = load_configs(args, ("job", "propagation"), {"propagation": flags, "job": {"key_numbering": args.key_numbering}})
    with cluster_client(args.scheduler) as client:
        result = propagate(args.input, args.keys, args.output, config=cfg["propagation"], job=cfg["job"],
                           progress=args.reporter, cuts=parse_cuts(args.cuts), client=client)
    args.reporter.done(args.output, files=result.files if len(result.files) > 1 else None)
    return 0
