"""Long-shot drift of the key-frame stage: how far the key frames' colours wander from the first key's.

Renders the key frames of a long real clip three ways, with the same model, noise and keys:
``independent`` (every cross-frame constraint off: plain img2img per key), ``one-anchor`` (the
method: every key attends to and fuses from the first key), and ``reanchor-N`` (the fusion anchor
moves every N keys; the first key stays in the attention references and AdaIN). For every key it
measures the colour drift against the first key: the distance between the CIE Lab mean colours (and
separately the chroma a, b only) of the rendered key and of the rendered first key. The same figure
for the *input* frames says how much the content itself changes.

The model is a tiny randomly initialised Stable Diffusion (no weights can be downloaded here), so
the figures show the mechanics (what each mode anchors to, and that re-anchoring keeps the first
key's statistics) more than a real style's behaviour; a real model on a GPU has to confirm the
size of the effect.

    python benchmarks/bench_longshot.py --clip ~/.cache/rerender-bench/clips/vtest.avi --frames 400 --interval 10

The default clip is OpenCV's ``vtest.avi`` (795 frames of a pedestrian street, from Debian's
``opencv-doc``: ``apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb x``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

# the randomly initialised model builders are test fixtures (no weights can be downloaded here)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

DEFAULT_CLIP = Path("~/.cache/rerender-bench/clips/vtest.avi").expanduser()


def lab_mean(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab).reshape(-1, 3).mean(0)


def drift(images: list[np.ndarray]) -> dict:
    """Per key: |Lab mean - first key's| (all channels, and chroma a, b only)."""
    ref = lab_mean(images[0])
    means = [lab_mean(im) for im in images]
    full = [float(np.linalg.norm(m - ref)) for m in means]
    chroma = [float(np.linalg.norm(m[1:] - ref[1:])) for m in means]
    third = max(1, len(images) // 3)
    return {"mean": round(float(np.mean(full[1:])), 3), "last_third": round(float(np.mean(full[-third:])), 3),
            "chroma_mean": round(float(np.mean(chroma[1:])), 3),
            "chroma_last_third": round(float(np.mean(chroma[-third:])), 3),
            "per_key": [round(v, 2) for v in full]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="a long video (default: OpenCV's vtest.avi)")
    ap.add_argument("--frames", type=int, default=400, help="use the first N frames")
    ap.add_argument("--interval", type=int, default=10, help="key frame interval K")
    ap.add_argument("--size", type=int, default=64, help="working short side in pixels")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--reanchor", type=int, nargs="*", default=[4], help="re-anchoring periods to compare")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    if not args.clip.is_file():
        print(f"clip {args.clip} not found: pass --clip VIDEO (see the module docstring for vtest.avi)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)

    from diffusers.utils import logging as dlog

    from rerender.flow import DISFlow
    from rerender.media import read_frames
    from rerender.keyframes import models
    from rerender.keyframes.config import KeyframeConfig
    from _tiny_models import save_model_folder
    from rerender.keyframes.stage import render_keys
    from rerender.keyselect import plan_keys
    from rerender.warping import occlusion

    dlog.disable_progress_bar()
    frames = list(read_frames(args.clip, range(0, args.frames), size=args.size))
    keys = plan_keys(None, range(len(frames)), interval=args.interval).keys
    dis = DISFlow()
    flows: dict = {}

    def flow(a: int, b: int) -> np.ndarray:
        if (a, b) not in flows:
            flows[a, b] = dis(frames[a], frames[b])
        return flows[a, b]

    runs = {"independent": dict(cross_frame_attention=False, shape_fusion=False, pixel_fusion=False, adain=False),
            "one-anchor": {}}
    runs.update({f"reanchor-{n}": dict(reanchor_every=n) for n in args.reanchor})
    figures = {"clip": str(args.clip), "frames": len(frames), "size": list(frames[0].shape[:2]), "keys": len(keys),
               "interval": args.interval, "steps": args.steps, "model": "tiny (random weights)",
               "input": drift([frames[k] for k in keys])}
    with tempfile.TemporaryDirectory() as tmp:
        model, cn = save_model_folder(Path(tmp) / "sd")
        comps = models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu"))
        for name, opts in runs.items():
            cfg = KeyframeConfig(model=str(model), controlnet=[str(cn)], control=["canny"], prompt="an oil painting",
                                 steps=args.steps, strength=0.75, interval=args.interval, **opts)
            out = Path(tmp) / name
            t0 = time.perf_counter()
            render_keys(frames.__getitem__, keys, out, cfg, flow=flow, occlusion=occlusion, components=comps)
            from rerender.media import read_image

            figures[name] = drift([read_image(out / f"{k:04d}.png") for k in keys])
            figures[name]["seconds_per_key"] = round((time.perf_counter() - t0) / len(keys), 3)
            print(json.dumps({name: {k: v for k, v in figures[name].items() if k != "per_key"}}), flush=True)
    text = json.dumps(figures, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
