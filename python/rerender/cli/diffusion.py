"""``rerender run`` (key frames by diffusion, then propagation) and ``rerender keyframes``.

Importing this module is cheap (no torch): the commands check the diffusion extra before they start.
"""
from __future__ import annotations

from .common import add_cluster_option, add_command, add_job_options, cluster_client, load_configs

EPILOG = """\
models: --model / --controlnet / --vae take a hub id, a local diffusers folder or a single .safetensors
file (a single-file base model may need --model-config DIR|ID for its component configs when offline).
Pickle checkpoints (.ckpt, .pt, .bin) run code when loaded and need --allow-pickle.
LoRA: --lora FILE[:SCALE], repeatable.

config: --config FILE (YAML or JSON) holds any option of the key-frame stage (see
rerender.keyframes.config.KeyframeConfig) and of the job (size, frames, flow, ...); for `run`
optionally in sections `job:`, `keyframes:` and `propagation:`; flags override it; unknown keys are
errors.

resume: key frames already rendered with the same options are kept (WORK/keys/keys.json).

example:
  rerender run shot.mp4 --prompt "a watercolor painting of a fox" -o fox.mp4 --interval 10
"""

# KeyframeConfig fields set by flags of the same name
KEYFRAME_FLAGS = ("prompt", "negative_prompt", "added_prompt", "model", "model_config", "vae", "controlnet",
                  "control", "control_strength", "control_images", "lora", "interval", "strength", "steps",
                  "guidance_scale", "seed", "allow_pickle", "device", "dtype", "cross_frame_layers",
                  "color_correction", "cross_frame_attention", "shape_fusion", "pixel_fusion", "adain")


def add(sub) -> None:
    p = add_command(
        sub, "run", epilog=EPILOG,
        help="translate a video from a text prompt: diffusion key frames, then propagation",
        description="Render every K-th frame with Stable Diffusion + ControlNet under cross-frame constraints, "
                    "then propagate them to every frame (guided PatchMatch + temporal-aware blending).")
    p.add_argument("input", metavar="INPUT", help="video file or image sequence (folder / pattern)")
    add_job_options(p)
    _add_keyframe_options(p)
    add_cluster_option(p)
    p.set_defaults(func=run)
    k = add_command(
        sub, "keyframes", epilog=EPILOG,
        help="render only the key frames (WORK/keys/NNNN.png, the folder `rerender propagate --keys` reads)",
        description="Render every K-th frame of INPUT into WORK/keys with the diffusion stage.")
    k.add_argument("input", metavar="INPUT", help="video file or image sequence (folder / pattern)")
    add_job_options(k, output_required=False)
    _add_keyframe_options(k)
    k.set_defaults(func=keyframes)


def _add_keyframe_options(p) -> None:
    p.add_argument("--prompt", default=None, help="text prompt describing the result")
    p.add_argument("--negative-prompt", default=None, help="what to avoid (has a sensible default)")
    p.add_argument("--added-prompt", default=None, help="appended to the prompt (default: quality words)")
    p.add_argument("--model", default=None, metavar="ID|DIR|FILE", help="Stable Diffusion 1.5-type base model")
    p.add_argument("--model-config", default=None, metavar="DIR|ID",
                   help="diffusers folder / id holding the component configs of a single-file --model")
    p.add_argument("--vae", default=None, metavar="ID|DIR|FILE", help="custom VAE")
    p.add_argument("--controlnet", action="append", default=None, metavar="ID|DIR|FILE",
                   help="ControlNet (repeat for several; pairs with --control in order)")
    p.add_argument("--control", action="append", default=None, choices=("canny", "hed", "images"),
                   help="condition of each ControlNet (default: hed)")
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
    p.add_argument("--allow-pickle", action="store_true", default=None,
                   help="allow .ckpt/.pt/.bin pickle checkpoints (they can execute code)")
    p.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"))
    p.add_argument("--dtype", default=None, choices=("auto", "fp16", "fp32"))
    p.add_argument("--cross-frame-layers", default=None, choices=("decoder", "decoder-light", "all"))
    p.add_argument("--color-correction", action="store_true", default=None,
                   help="match the inputs' colours to a frame generated from noise first (prompted colours win)")
    for name in ("cross-frame-attention", "shape-fusion", "pixel-fusion", "adain"):
        p.add_argument(f"--no-{name}", dest=name.replace("-", "_"), action="store_false", default=None,
                       help=f"switch {name.replace('-', ' ')} off (ablation)")
    p.add_argument("--first-only", action="store_true", help="render only the anchor (first key) as a preview")


def require_diffusion() -> None:
    """Fail at once, before any decoding, when the diffusion extra is not installed."""
    import importlib.util

    missing = [m for m in ("torch", "diffusers", "transformers", "safetensors")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"key frames by diffusion need {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                         "not installed: pip install \"rerender[diffusion]\" (with the torch build for your GPU); "
                         "`rerender propagate` works without them")


def _configs(args, stages: tuple[str, ...]):
    cfg = load_configs(args, stages, {"keyframes": {k: getattr(args, k, None) for k in KEYFRAME_FLAGS}})
    if not cfg["keyframes"].prompt:
        raise ValueError("--prompt: a text prompt is required (on the command line or as `prompt` in --config)")
    return cfg


def keyframes(args) -> int:
    from ..pipeline import render_keyframes

    require_diffusion()
    cfg = _configs(args, ("job", "keyframes"))
    job, _ = render_keyframes(args.input, cfg["keyframes"], job=cfg["job"], output=args.output,
                              progress=args.reporter, first_only=args.first_only)
    args.reporter.done(str(job.wd.keys))
    return 0


def run(args) -> int:
    from ..pipeline import translate

    require_diffusion()
    cfg = _configs(args, ("job", "keyframes", "propagation"))
    with cluster_client(None if args.first_only else args.scheduler) as client:
        translate(args.input, args.output, keyframes=cfg["keyframes"], propagation=cfg["propagation"],
                  job=cfg["job"], progress=args.reporter, first_only=args.first_only, client=client)
    # a preview's result is the anchor key frame
    args.reporter.done(str(cfg["job"].work_dir_for(args.output) / "keys") if args.first_only else args.output)
    return 0
