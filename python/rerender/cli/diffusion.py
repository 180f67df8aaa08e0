"""``rerender run`` (key frames by diffusion, then propagation) and ``rerender keyframes``.

Importing this module is cheap (no torch): the commands check the diffusion extra before they start.
"""
from __future__ import annotations

import typing

from ..keyframes.conditions import NAMES as CONDITION_NAMES
from ..keyframes.config import Family, Sampler
from .common import add_cluster_option, add_command, add_job_options, cluster_client, group, load_configs
from .propagate import add_blend_options, blend_flags

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
                  "control", "control_strength", "control_images", "lora", "interval", "key_frames", "strength", "steps",
                  "guidance_scale", "seed", "allow_pickle", "device", "dtype", "cross_frame_layers",
                  "color_correction", "cross_frame_attention", "shape_fusion", "pixel_fusion", "adain", "prompt_schedule",
                  "negative_prompt_schedule", "depth_model", "control_window", "cross_window", "freeu", "offload",
                  "vae_tiling", "raft_weights", "raft_iters", "init", "source_prompt", "inversion_refine", "reference",
                  "reference_scale", "ip_adapter", "image_encoder", "reanchor_every", "family", "sampler")


# the configurations behind the options, first match wins (their defaults show in --help)
CONFIGS = ("rerender.job:JobConfig", "rerender.keyframes.config:KeyframeConfig", "rerender.passes:PropagationConfig")


def add(sub) -> None:
    p = add_command(
        sub, "run", epilog=EPILOG, configs=CONFIGS,
        help="translate a video from a text prompt: diffusion key frames, then propagation",
        description="Render every K-th frame with Stable Diffusion + ControlNet under cross-frame constraints, "
                    "then propagate them to every frame (guided PatchMatch + temporal-aware blending).")
    group(p, "input/output").add_argument("input", metavar="INPUT",
                                          help="video file or image sequence (folder / pattern)")
    add_job_options(p)
    _add_keyframe_options(p)
    add_blend_options(p)
    add_cluster_option(p)
    p.set_defaults(func=run)
    k = add_command(
        sub, "keyframes", epilog=EPILOG, configs=CONFIGS[:2],
        help="render only the key frames (WORK/keys/NNNN.png, the folder `rerender propagate --keys` reads)",
        description="Render every K-th frame of INPUT into WORK/keys with the diffusion stage.")
    group(k, "input/output").add_argument("input", metavar="INPUT",
                                          help="video file or image sequence (folder / pattern)")
    add_job_options(k, output_required=False)
    _add_keyframe_options(k)
    k.set_defaults(func=keyframes)


def _add_keyframe_options(p) -> None:
    keys, model, constraints, memory = (group(p, name) for name in ("key frames", "model", "constraints", "memory"))
    keys.add_argument("--prompt", default=None,
                      help="text prompt describing the result (required: here or as `prompt` in --config)")
    keys.add_argument("--negative-prompt", default=None, help="what to avoid")
    keys.add_argument("--prompt-at", dest="prompt_schedule", action="append", default=None, metavar="FRAME:PROMPT",
                      help="from input frame FRAME on, key frames use PROMPT (repeatable; a prompt per shot section)")
    keys.add_argument("--negative-prompt-at", dest="negative_prompt_schedule", action="append", default=None,
                      metavar="FRAME:TEXT", help="from input frame FRAME on, the negative prompt is TEXT (repeatable)")
    keys.add_argument("--added-prompt", default=None, help="appended to the prompt")
    model.add_argument("--model", default=None, metavar="ID|DIR|FILE",
                       help="base model, Stable Diffusion 1.x, 2.x or XL (the family is read from the model): hub id, "
                            "diffusers folder or single .safetensors file (a hub id needs the hub or its local cache)")
    model.add_argument("--family", default=None, choices=typing.get_args(Family),
                       help="insist on a model family (auto: read from the model)")
    model.add_argument("--model-config", default=None, metavar="DIR|ID",
                       help="diffusers folder / id holding the component configs of a single-file --model "
                            "(default: inferred by diffusers)")
    model.add_argument("--vae", default=None, metavar="ID|DIR|FILE", help="custom VAE (default: the model's)")
    model.add_argument("--controlnet", action="append", default=None, metavar="ID|DIR|FILE",
                       help="ControlNet (repeat for several; pairs with --control in order); without one, "
                            "lllyasviel's sd-controlnet of each condition")
    model.add_argument("--control", action="append", default=None, choices=CONDITION_NAMES,
                       help="condition of each ControlNet")
    model.add_argument("--depth-model", default=None, metavar="DIR|ID",
                       help="depth estimator for --control depth: a transformers depth-estimation folder or hub id "
                            "(safetensors; default: none, yours to supply)")
    constraints.add_argument("--control-window", type=float, nargs=2, default=None, metavar=("START", "END"),
                             help="ControlNet guidance start/end as fractions of the steps run")
    model.add_argument("--control-strength", action="append", type=float, default=None, metavar="S",
                       help="conditioning scale (one for all or one per ControlNet)")
    model.add_argument("--control-images", action="append", default=None, metavar="DIR",
                       help="condition images NNNN.png for an 'images' control")
    model.add_argument("--lora", action="append", default=None, metavar="FILE[:SCALE]", help="LoRA file, repeatable")
    keys.add_argument("--interval", type=int, default=None, metavar="K", help="render every K-th frame")
    keys.add_argument("--key-frames", default=None, metavar="auto|LIST|FILE",
                      help="key frames instead of --interval: 'auto' (by content change; shot cuts detected, every "
                           "shot gets its own anchor), a list such as 0,14,37,80, or WORK/keyplan.json as written (and "
                           "perhaps edited) after an earlier run; default: every --interval frames")
    keys.add_argument("--strength", type=float, default=None, metavar="S",
                      help="SDEdit strength in (0, 1]: lower keeps more of the input")
    keys.add_argument("--steps", type=int, default=None, metavar="N", help="denoising steps")
    keys.add_argument("--sampler", default=None, choices=typing.get_args(Sampler),
                      help="diffusers scheduler that samples the key frames (ddim: the paper's; --scheduler is the "
                           "Dask cluster); lcm/tcd for few-step models (1-8 steps, guidance 1-2)")
    keys.add_argument("--guidance-scale", type=float, default=None, metavar="G", help="classifier-free guidance scale")
    keys.add_argument("--seed", type=int, default=None, metavar="N",
                      help="seed of the shared initial noise (same seed, same key frames)")
    model.add_argument("--allow-pickle", action="store_true", default=None,
                       help="allow .ckpt/.pt/.bin pickle checkpoints (they can execute code)")
    model.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"),
                       help="where the diffusion runs (auto: CUDA when usable, else the CPU)")
    model.add_argument("--dtype", default=None, choices=("auto", "fp16", "fp32"),
                       help="precision of the diffusion models (auto: fp16 on CUDA, fp32 on the CPU)")
    constraints.add_argument("--cross-frame-layers", default=None, choices=("decoder", "decoder-light", "all"),
                             help="self-attention layers that attend to the anchor and previous key: every decoder "
                                  "layer, the decoder without its widest (1280-channel) ones, or all")
    constraints.add_argument("--cross-window", type=float, nargs=2, default=None, metavar=("START", "END"),
                             help="steps (fractions of those run) with cross-frame attention")
    keys.add_argument("--freeu", type=float, nargs=4, default=None, metavar=("B1", "B2", "S1", "S2"),
                      help="FreeU backbone/skip factors (SD 1.5: 1.5 1.6 0.9 0.2)")
    memory.add_argument("--offload", default=None, choices=("none", "model", "sequential"),
                        help="low VRAM: model = one model on the GPU at a time + attention caches in CPU memory; "
                             "sequential = layer by layer (slowest, least memory)")
    memory.add_argument("--vae-tiling", action="store_true", default=None,
                        help="encode/decode in tiles (bounds VAE memory above 512 px)")
    constraints.add_argument("--raft-weights", default=None, metavar="FILE",
                             help="RAFT weights (torchvision layout, .safetensors; .pth needs --allow-pickle): "
                                  "key-frame fusions use RAFT flow instead of the job's --flow (default: none)")
    constraints.add_argument("--raft-iters", type=int, default=None, metavar="N", help="RAFT refinement iterations")
    keys.add_argument("--color-correction", action="store_true", default=None,
                      help="give the inputs the colours (chroma) of a frame generated from noise first, keeping "
                           "their lightness (prompted colours win)")
    for name in ("cross-frame-attention", "shape-fusion", "pixel-fusion", "adain"):
        constraints.add_argument(f"--no-{name}", dest=name.replace("-", "_"), action="store_false", default=None,
                                 help=f"switch {name.replace('-', ' ')} off (ablation)")
    keys.add_argument("--init", default=None, choices=("sdedit", "inversion"),
                      help="start latent: sdedit (noised input, the paper's) or inversion (DDIM inversion of "
                           "the input under --source-prompt: keeps structure at high strength; cached in WORK/keys)")
    keys.add_argument("--source-prompt", default=None, metavar="TEXT",
                      help="describes the input, for --init inversion (default: empty, unconditional)")
    keys.add_argument("--inversion-refine", type=int, default=None, metavar="N",
                      help="fixed-point iterations per inversion step (0 = plain DDIM inversion)")
    model.add_argument("--reference", default=None, metavar="IMAGE",
                       help="condition every key frame on this image beside the prompt (IP-Adapter; default: none)")
    model.add_argument("--reference-scale", type=float, default=None, metavar="S",
                       help="IP-Adapter scale: 0 = prompt only, 1 = mostly the image")
    model.add_argument("--ip-adapter", default=None, metavar="FILE|DIR|ID",
                       help="IP-Adapter weights (a hub id: its models/ip-adapter_sd15.safetensors)")
    model.add_argument("--image-encoder", default=None, metavar="DIR|ID",
                       help="the IP-Adapter's CLIP image encoder (default: image_encoder next to the adapter)")
    constraints.add_argument("--reanchor-every", type=int, default=None, metavar="N",
                             help="long shots: every N keys the latest key becomes the fusion anchor while the first "
                                  "key stays in the attention references and AdaIN (0 = one anchor for the shot)")
    keys.add_argument("--first-only", action="store_true",
                      help="render only the anchor (first key) as a preview")


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
    flags = {"keyframes": {k: getattr(args, k, None) for k in KEYFRAME_FLAGS}}
    if "propagation" in stages:
        flags["propagation"] = blend_flags(args)
    cfg = load_configs(args, stages, flags)
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
        _, result = translate(args.input, args.output, keyframes=cfg["keyframes"], propagation=cfg["propagation"],
                              job=cfg["job"], progress=args.reporter, first_only=args.first_only, client=client)
    if result is None:  # a preview: its result is the anchor key frame
        args.reporter.done(str(cfg["job"].work_dir_for(args.output) / "keys"))
    else:
        args.reporter.done(args.output, files=result.files if len(result.files) > 1 else None)
    return 0
