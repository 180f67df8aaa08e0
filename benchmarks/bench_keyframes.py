"""Key-frame stage benchmark: seconds per key frame and peak memory.

Default: a Stable Diffusion 1.5-sized UNet + ControlNet + VAE + CLIP text model (random weights:
the timing does not depend on them) at 512x512, 20 DDIM steps, strength 1, CFG 7.5, every
constraint on (cross-frame attention, shape-aware fusion, both passes of pixel-aware fusion, AdaIN).
On CUDA it runs in fp16 and reports torch's peak allocated memory; on CPU (fp32) pick a reduced
setting, e.g. ``--model tiny --size 64`` or ``--size 256 --steps 4``, and it reports peak RSS.

SDXL: ``--model sdxl`` builds SDXL 1.0's shapes (UNet with two text encoders' 2048-wide states, pooled
embeddings and size/crop time ids; an SDXL ControlNet from it; the SD VAE in fp32 under fp16, as
SDXL's ``force_upcast`` asks); the issue's setting is ``--model sdxl --size 1024`` on a GPU, and a
distilled few-step key frame ``--model sdxl --size 1024 --sampler lcm --steps 4 --guidance 1``. On a
CPU ``--model tiny-sdxl --size 64`` runs the same code path with tiny shapes.

Low-VRAM modes: ``--offload model|sequential`` and ``--vae-tiling`` run one mode; ``--memory-modes``
runs each mode (none, model, sequential, none + VAE tiling, model + VAE tiling) in a fresh process and
prints one line per mode (peak memory is a per-process figure). ``attention_cache_mib`` is the size of
the anchor's and the previous key's cross-frame attention caches, which the offload modes keep in CPU
memory instead of on the GPU. On a CPU-only machine the offload modes cannot lower peak RSS (all
memory is CPU memory): their GPU figures need a GPU.

    python benchmarks/bench_keyframes.py                       # GPU, the issue's setting
    python benchmarks/bench_keyframes.py --model tiny --size 64 --steps 20 --threads 1
    python benchmarks/bench_keyframes.py --memory-modes --size 256 --steps 4 --keys 1
    python benchmarks/bench_keyframes.py --vae-only --size 1024 [--vae-tiling]   # the VAE's share alone
    python benchmarks/bench_keyframes.py --model sdxl --size 1024 [--sampler lcm --steps 4 --guidance 1]
    python benchmarks/bench_keyframes.py --model tiny-sdxl --size 64 --steps 4 --threads 1   # CPU
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# the randomly initialised model builders are test fixtures (no weights can be downloaded here)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("sd15", "tiny", "sdxl", "tiny-sdxl"), default="sd15",
                    help="model shapes (random weights)")
    ap.add_argument("--sampler", default="ddim", choices=("ddim", "euler", "euler-a", "dpm++", "lcm", "tcd"))
    ap.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance (<= 1: no CFG batch)")
    ap.add_argument("--size", type=int, default=512, help="frame side in pixels (multiple of 8)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--keys", type=int, default=3, help="key frames timed after the anchor")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--dtype", choices=("auto", "fp16", "fp32"), default="auto")
    ap.add_argument("--layers", choices=("decoder", "decoder-light", "all"), default="decoder")
    ap.add_argument("--no-pixel-fusion", action="store_true", help="one pass only (no rough render)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--offload", choices=("none", "model", "sequential"), default="none")
    ap.add_argument("--vae-tiling", action="store_true")
    ap.add_argument("--memory-modes", action="store_true", help="run every low-VRAM mode in its own process")
    ap.add_argument("--vae-only", action="store_true", help="time one VAE encode + decode at --size (peak memory)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    if args.memory_modes:
        return _memory_modes(argv or sys.argv[1:], args.json)
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import CLIPTokenizer

    from rerender.keyframes.config import KeyframeConfig
    from rerender.keyframes.controls import canny
    from _tiny_models import build_components, build_family_components, write_tiny_tokenizer  # tests/: random models
    from rerender.keyframes.models import Components, apply_offload, prepare, resolve_device
    from rerender.keyframes.sampler import Geometry, KeyframeSampler

    dev, dt = resolve_device(args.device, args.dtype)
    if args.vae_only:
        return _vae_only(args, dev, dt)
    family = "sdxl" if args.model.endswith("sdxl") else "sd15"
    if family == "sdxl":
        parts = build_family_components("sdxl", "tiny" if args.model == "tiny-sdxl" else "sdxl")
    else:
        parts = build_components(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        write_tiny_tokenizer(Path(tmp))  # token ids only feed the (random) text model: any vocabulary works
        tokenizer = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), model_max_length=77)
    text_2 = parts.get("text_encoder_2")
    mods = [parts["unet"], parts["text_encoder"], parts["controlnet"], *([text_2] if text_2 is not None else [])]
    home = dev if args.offload == "none" else torch.device("cpu")
    for m in mods:
        prepare(m, home, dt)
    upcast = dt == torch.float16 and parts["vae"].config.force_upcast and family == "sdxl"
    prepare(parts["vae"], home, torch.float32 if upcast else dt)  # as models.load_components does
    from diffusers import DDIMScheduler

    comps = Components(unet=parts["unet"], vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=tokenizer,
                       scheduler=DDIMScheduler.from_config(parts["scheduler"].config),
                       controlnets=[parts["controlnet"]], device=dev, dtype=dt, family=family,
                       text_encoder_2=text_2, tokenizer_2=tokenizer if text_2 is not None else None)
    apply_offload(comps, args.offload)
    cfg = KeyframeConfig(model="random", controlnet=["random"], control=["canny"], prompt="a painting",
                         steps=args.steps, strength=args.strength, cross_frame_layers=args.layers,
                         sampler=args.sampler, guidance_scale=args.guidance,
                         pixel_fusion=not args.no_pixel_fusion, offload=args.offload, vae_tiling=args.vae_tiling)
    sampler = KeyframeSampler(comps, cfg)

    s = args.size
    rng = np.random.default_rng(0)
    base = (rng.random((s + 64, s + 64, 3)) * 255).astype(np.uint8)
    frames = [np.ascontiguousarray(base[2 * i:2 * i + s, 3 * i:3 * i + s]) for i in range(args.keys + 1)]
    flow = np.zeros((s, s, 2), np.float32)
    flow[..., 0], flow[..., 1] = -3.0, -2.0
    occ = np.zeros((s, s), np.uint8)
    occ[:, : s // 8] = 1  # a strip entering the view

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    anchor = sampler.render(frames[0], [canny(frames[0])])
    sync()
    t_anchor = time.perf_counter() - t0
    prev = anchor.memory
    times, cpu = [], []
    for f in frames[1:]:
        t1, c1 = time.perf_counter(), time.process_time()
        geo = Geometry(flow, occ, flow, occ)
        res = sampler.render(f, [canny(f)], anchor.memory, prev, geo)
        sync()
        times.append(time.perf_counter() - t1)
        cpu.append(time.process_time() - c1)
        prev = res.memory
    figures = {
        "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
        "dtype": str(dt).replace("torch.", ""), "model": args.model, "sampler": args.sampler, "size": s,
        "steps": args.steps,
        "steps_run": sampler.n_steps, "passes": 1 if args.no_pixel_fusion else 2, "cfg": cfg.guidance_scale,
        "layers": args.layers, "torch_threads": torch.get_num_threads(),
        "offload": args.offload, "vae_tiling": args.vae_tiling,
        "attention_cache_mib": round(sum(t.numel() * t.element_size() for m in {id(anchor.memory): anchor.memory,
                                                                              id(prev): prev}.values()
                                         for t in m.attn.values()) / 2**20, 1),
        "anchor_s": round(t_anchor, 3),
        "seconds_per_key": round(float(np.median(times)), 3) if times else None,
        "cpu_seconds_per_key": round(float(np.median(cpu)), 3) if cpu else None,
    }
    if dev.type == "cuda":
        figures["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    figures["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


def _vae_only(args, dev: torch.device, dt: torch.dtype) -> int:
    """One encode + decode of a --size frame with the model's VAE (random weights), with or without tiling."""
    from rerender.keyframes import encoder
    from rerender.keyframes.models import prepare

    from diffusers import AutoencoderKL

    from _tiny_models import SIZES

    # the VAE alone (building every component would dominate the peak), shaped as build_components does
    vae = prepare(AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                                **SIZES[args.model.replace("-sdxl", "").replace("sdxl", "sd15")]["vae"]), dev, dt)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.vae_tiling:
        vae.enable_tiling()
    rng = np.random.default_rng(0)
    frame = (rng.random((args.size, args.size, 3)) * 255).astype(np.uint8)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with torch.no_grad():
        latent = encoder.encode(vae, encoder.to_tensor(frame, dev, dt))
        encoder.decode(vae, latent)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    fig = {"vae_only": True, "model": args.model, "size": args.size, "vae_tiling": args.vae_tiling,
           "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
           "seconds": round(time.perf_counter() - t0, 2)}
    if dev.type == "cuda":
        fig["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fig["peak_rss_gib"] = round(peak / 2**20, 2)
    fig["rss_above_model_gib"] = round((peak - base_rss) / 2**20, 2)  # what encode + decode added
    print(json.dumps(fig, indent=2))
    return 0


def _memory_modes(argv: list[str], json_path: str | None) -> int:
    """Each low-VRAM mode in a fresh process (peak memory is per process); one JSON line per mode."""
    base = [a for a in argv if a != "--memory-modes"]
    if json_path:
        i = base.index("--json")
        del base[i:i + 2]
    rows = []
    for mode, tiling in (("none", False), ("model", False), ("sequential", False), ("none", True), ("model", True)):
        cmd = [sys.executable, __file__, *base, "--offload", mode] + (["--vae-tiling"] if tiling else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        fig = json.loads(out[out.index("{"):])
        keep = ("offload", "vae_tiling", "device", "size", "seconds_per_key", "attention_cache_mib",
                "peak_gpu_memory_gib", "peak_rss_gib")
        row = {k: fig[k] for k in keep if k in fig}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
