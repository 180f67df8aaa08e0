"""The ``rerender run`` and ``rerender keyframes`` commands (added to the main parser).

Importing this module is cheap (no torch): the main CLI imports it for every command.
"""
from __future__ import annotations

import argparse
from pathlib import Path

_EPILOG = """\
models: --model / --controlnet / --vae take a hub id, a local diffusers folder or a single .safetensors
file (a single-file base model may need --model-config DIR|ID for its component configs when offline).
Pickle checkpoints (.ckpt, .pt, .bin) run code when loaded and need --allow-pickle.
LoRA: --lora FILE[:SCALE], repeatable.

config: --config FILE (YAML or JSON) holds any option of the key-frame stage (see
rerender.keyframes.config.KeyframeConfig; for `run` optionally in sections `keyframes:` and
`propagation:`); flags override it; unknown keys are errors.

resume: key frames already rendered with the same options are kept (WORK/keys/keys.json).

example:
  rerender run shot.mp4 --prompt "a watercolor painting of a fox" -o fox.mp4 --interval 10
"""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT", help="video file or image sequence (folder / pattern)")
    p.add_argument("--prompt", default=None, help="text prompt describing the result")
    p.add_argument("--negative-prompt", default=None, help="what to avoid (has a sensible default)")
    p.add_argument("--added-prompt", default=None, help="appended to the prompt (default: quality words)")
    p.add_argument("--prompt-at", dest="prompt_schedule", action="append", default=None, metavar="FRAME:PROMPT",
                   help="from input frame FRAME on, key frames use PROMPT (repeatable; a prompt per shot section)")
    p.add_argument("--negative-prompt-at", dest="negative_prompt_schedule", action="append", default=None,
                   metavar="FRAME:TEXT", help="from input frame FRAME on, the negative prompt is TEXT (repeatable)")
    p.add_argument("--model", default=None, metavar="ID|DIR|FILE", help="Stable Diffusion 1.5-type base model")
    p.add_argument("--model-config", default=None, metavar="DIR|ID",
                   help="diffusers folder / id holding the component configs of a single-file --model")
    p.add_argument("--vae", default=None, metavar="ID|DIR|FILE", help="custom VAE")
    p.add_argument("--controlnet", action="append", default=None, metavar="ID|DIR|FILE",
                   help="ControlNet (repeat for several; pairs with --control in order)")
    p.add_argument("--control", action="append", default=None, choices=("canny", "hed", "depth", "images"),
                   help="condition of each ControlNet (default: hed)")
    p.add_argument("--depth-model", default=None, metavar="DIR|ID",
                   help="depth estimator for --control depth: a transformers depth-estimation folder or hub id "
                        "(safetensors; no default)")
    p.add_argument("--control-window", type=float, nargs=2, default=None, metavar=("START", "END"),
                   help="ControlNet guidance start/end as fractions of the steps run (default 0 1)")
    p.add_argument("--control-strength", action="append", type=float, default=None, metavar="S",
                   help="conditioning scale (one for all or one per ControlNet; default 0.7)")
    p.add_argument("--control-images", action="append", default=None, metavar="DIR",
                   help="condition images NNNN.png for an 'images' control")
    p.add_argument("--lora", action="append", default=None, metavar="FILE[:SCALE]", help="LoRA file, repeatable")
    p.add_argument("--interval", type=int, default=None, metavar="K", help="render every K-th frame (default 10)")
    p.add_argument("--strength", type=float, default=None, metavar="S",
                   help="SDEdit strength in (0, 1]: lower keeps more of the input (default 0.75)")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default 20)")
    p.add_argument("--guidance-scale", type=float, default=None, metavar="G", help="classifier-free guidance (7.5)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--size", type=int, default=None, metavar="N",
                   help="working resolution: short side in pixels, rounded to a multiple of 8 (default: input size)")
    p.add_argument("--frames", default=None, metavar="A:B", help="frame range, zero-based, B exclusive")
    p.add_argument("--flow", default=None, choices=("dis", "deepflow"), help="optical flow method (default dis)")
    p.add_argument("--work-dir", default=None, metavar="DIR", help="intermediate files (default OUT.work)")
    p.add_argument("--config", default=None, metavar="FILE", help="YAML/JSON options file")
    p.add_argument("--allow-pickle", action="store_true", default=None,
                   help="allow .ckpt/.pt/.bin pickle checkpoints (they can execute code)")
    p.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"))
    p.add_argument("--dtype", default=None, choices=("auto", "fp16", "fp32"))
    p.add_argument("--cross-frame-layers", default=None, choices=("decoder", "decoder-light", "all"))
    p.add_argument("--cross-window", type=float, nargs=2, default=None, metavar=("START", "END"),
                   help="steps (fractions of those run) with cross-frame attention (default 0 1)")
    p.add_argument("--freeu", type=float, nargs=4, default=None, metavar=("B1", "B2", "S1", "S2"),
                   help="FreeU backbone/skip factors (SD 1.5: 1.5 1.6 0.9 0.2); off by default")
    p.add_argument("--offload", default=None, choices=("none", "model", "sequential"),
                   help="low VRAM: model = one model on the GPU at a time + attention caches in CPU memory; "
                        "sequential = layer by layer (slowest, least memory)")
    p.add_argument("--vae-tiling", action="store_true", default=None,
                   help="encode/decode in tiles (bounds VAE memory above 512 px)")
    p.add_argument("--raft-weights", default=None, metavar="FILE",
                   help="RAFT weights (torchvision layout, .safetensors; .pth needs --allow-pickle): "
                        "key-frame fusions use RAFT flow instead of DIS")
    p.add_argument("--raft-iters", type=int, default=None, metavar="N", help="RAFT refinement iterations (12)")
    p.add_argument("--color-correction", action="store_true", default=None,
                   help="give the inputs the colours (chroma) of a frame generated from noise first, keeping their "
                        "lightness (prompted colours win)")
    for name in ("cross-frame-attention", "shape-fusion", "pixel-fusion", "adain"):
        p.add_argument(f"--no-{name}", dest=name.replace("-", "_"), action="store_false", default=None,
                       help=f"switch {name.replace('-', ' ')} off (ablation)")
    p.add_argument("--init", default=None, choices=("sdedit", "inversion"),
                   help="start latent: sdedit (noised input, the paper's default) or inversion (DDIM inversion of "
                        "the input under --source-prompt: keeps structure at high strength; cached in WORK/keys)")
    p.add_argument("--source-prompt", default=None, metavar="TEXT", help="describes the input, for --init inversion")
    p.add_argument("--inversion-refine", type=int, default=None, metavar="N",
                   help="fixed-point iterations per inversion step (default 1; 0 = plain DDIM inversion)")
    p.add_argument("--reference", default=None, metavar="IMAGE",
                   help="condition every key frame on this image beside the prompt (IP-Adapter)")
    p.add_argument("--reference-scale", type=float, default=None, metavar="S",
                   help="IP-Adapter scale: 0 = prompt only, 1 = mostly the image (default 0.5)")
    p.add_argument("--ip-adapter", default=None, metavar="FILE|DIR|ID",
                   help="IP-Adapter weights (default h94/IP-Adapter: models/ip-adapter_sd15.safetensors)")
    p.add_argument("--image-encoder", default=None, metavar="DIR|ID",
                   help="the IP-Adapter's CLIP image encoder (default: image_encoder next to the adapter)")
    p.add_argument("--reanchor-every", type=int, default=None, metavar="N",
                   help="long shots: every N keys the latest key becomes the fusion anchor while the first key stays "
                        "in the attention references and AdaIN (0 = one anchor for the shot)")
    p.add_argument("--first-only", action="store_true", help="render only the anchor (first key) as a preview")


def _parent():
    try:  # accept --progress after the subcommand too, like the other commands
        from rerender.cli import _progress_parent

        return [_progress_parent()]
    except ImportError:
        return []


def add_commands(subparsers) -> None:
    """Add ``run`` and ``keyframes`` to the main ``rerender`` parser."""
    from rerender.cli import _Formatter

    p = subparsers.add_parser(
        "run", parents=_parent(), formatter_class=_Formatter, epilog=_EPILOG,
        help="translate a video from a text prompt: diffusion key frames, then propagation",
        description="Render every K-th frame with Stable Diffusion + ControlNet under cross-frame constraints, "
                    "then propagate them to every frame (guided PatchMatch + temporal-aware blending).")
    _add_common(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output video file or folder")
    p.set_defaults(func=cmd_run)
    k = subparsers.add_parser(
        "keyframes", parents=_parent(), formatter_class=_Formatter, epilog=_EPILOG,
        help="render only the key frames (WORK/keys/NNNN.png, the folder `rerender propagate --keys` reads)",
        description="Render every K-th frame of INPUT into WORK/keys with the diffusion stage.")
    _add_common(k)
    k.add_argument("-o", "--output", default=None, metavar="OUT",
                   help="the final output the work dir belongs to (work dir default: OUT.work)")
    k.set_defaults(func=cmd_keyframes)


def _overrides(args) -> dict:
    keys = ("prompt", "negative_prompt", "added_prompt", "model", "model_config", "vae", "controlnet", "control",
            "control_strength", "control_images", "lora", "interval", "strength", "steps", "guidance_scale", "seed",
            "flow", "allow_pickle", "device", "dtype", "cross_frame_layers", "color_correction",
            "cross_frame_attention", "shape_fusion", "pixel_fusion", "adain", "prompt_schedule",
            "negative_prompt_schedule", "depth_model", "control_window", "cross_window", "freeu", "offload",
            "vae_tiling", "raft_weights", "raft_iters", "init", "source_prompt", "inversion_refine", "reference",
            "reference_scale", "ip_adapter", "image_encoder", "reanchor_every")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def _load_configs(args, with_propagation: bool):
    """KeyframeConfig (and PropagationConfig) from --config (plain or sectioned) and the flags."""
    from rerender import config as rconfig

    from .config import KeyframeConfig

    data = rconfig.read_mapping(args.config) if args.config else {}
    where = str(args.config) if args.config else "config"
    sectioned = bool(data) and set(data) <= {"keyframes", "propagation"}
    kf_data = dict(data.get("keyframes") or {}) if sectioned else dict(data)
    if "propagation" in data and not with_propagation:
        raise rconfig.ConfigError(f"{where}: the 'propagation' section is only used by `rerender run`")
    kf_data.update(_overrides(args))
    kf = rconfig.from_dict(KeyframeConfig, kf_data, f"{where}:keyframes" if sectioned else where)
    if not kf.prompt:
        raise ValueError("--prompt: a text prompt is required (on the command line or as `prompt` in --config)")
    prop = None
    if with_propagation:
        from rerender.propagate import PropagationConfig

        p_data = dict(data.get("propagation") or {}) if sectioned else {}
        for key, value in (("size", args.size), ("flow", args.flow)):
            if value is not None:
                p_data[key] = value
        p_data.setdefault("flow", kf.flow)
        prop = rconfig.from_dict(PropagationConfig, p_data, f"{where}:propagation")
    return kf, prop


def _work_dir(args) -> Path:
    if args.work_dir:
        return Path(args.work_dir)
    if args.output:
        from rerender.job import default_work_dir

        return default_work_dir(args.output)
    raise ValueError("--work-dir: give a work directory (or -o OUT to use OUT.work)")


def render_clip_keys(input_path: str, work_dir: Path, cfg, *, size: int | None = None, frames: str | None = None,
                     progress=None, first_only: bool = False):
    """Key frames of a clip into ``work_dir/keys``: frames read at the working size, flows from the
    shared flow cache ``work_dir/flow``. Returns the stage result."""
    from rerender.job import prepare_frames

    from .stage import key_indices, render_keys

    try:  # our own progress reporter speaks for the stage; diffusers' loading bars are noise here
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
    except ImportError:
        pass
    # the propagation job's own decode stage and flow cache: decoded once, flows computed once
    wd, sel = prepare_frames(input_path, work_dir, size=size, frames=frames, progress=progress)
    keys = key_indices(sel, cfg.interval)
    short = min(wd.frame(keys[0]).shape[:2])
    if short > 768 and progress is not None:
        progress.log(f"working size: the short side is {short} px; Stable Diffusion 1.5 works best near 512 "
                     "(--size 512) and needs far more time and memory above it")
    cache = wd.flow_cache(cfg.flow)

    def flow(a: int, b: int):
        return cache.get(a, b)

    return render_keys(wd.frame, keys, Path(work_dir) / "keys", cfg, flow=flow, progress=progress,
                       first_only=first_only)


def _log_keys(reporter, res) -> None:
    reporter.log(f"key frames: {len(res.rendered)} rendered, {len(res.skipped)} reused")
    if res.seconds_per_key is not None:
        reporter.log(f"key frames: {res.seconds_per_key:.2f} s per key frame")


def cmd_keyframes(args) -> int:
    cfg, _ = _load_configs(args, with_propagation=False)
    work = _work_dir(args)
    res = render_clip_keys(args.input, work, cfg, size=args.size, frames=args.frames, progress=args.reporter,
                           first_only=args.first_only)
    _log_keys(args.reporter, res)
    args.reporter.done(str(work / "keys"))
    return 0


def cmd_run(args) -> int:
    from rerender.job import run_propagation

    cfg, prop = _load_configs(args, with_propagation=True)
    work = _work_dir(args)
    # the propagation config's size (flag or --config section) so both stages share WORK/frames
    res = render_clip_keys(args.input, work, cfg, size=prop.size, frames=args.frames, progress=args.reporter,
                           first_only=args.first_only)
    _log_keys(args.reporter, res)
    if args.first_only:
        args.reporter.done(str(work / "keys"))
        return 0
    run_propagation(args.input, work / "keys", args.output, work_dir=work, config=prop, frames=args.frames,
                    progress=args.reporter)
    return 0
