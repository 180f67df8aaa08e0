"""Randomly initialised Stable Diffusion components built from config, saved like a user's model.

No weights can be downloaded in tests or benchmarks, so they build models of the right *shape*
here (tiny ones for tests, SD 1.5-sized ones for timing), save them as a diffusers folder (and a
ControlNet folder), and load them back through the same code path a user's model takes.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

# Byte-level BPE alphabet of the CLIP tokenizer (printable stand-ins for the 256 byte values).
def _byte_alphabet() -> list[str]:
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            chars.append(256 + n)
            n += 1
    return [chr(c) for c in chars]


_MERGES = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>"), ("c", "a"), ("ca", "t</w>")]
TINY_VOCAB_SIZE = 512 + len(_MERGES) + 2  # bytes, end-of-word bytes, merges, start/end tokens


def write_tiny_tokenizer(folder: Path, max_length: int = 77) -> None:
    """A made-up CLIP BPE vocabulary: single bytes (plus end-of-word forms), a few merges, specials."""
    folder.mkdir(parents=True, exist_ok=True)
    alphabet = _byte_alphabet()
    tokens = alphabet + [a + "</w>" for a in alphabet]
    tokens += ["".join(m) for m in _MERGES] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in _MERGES), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "model_max_length": max_length, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "tokenizer_class": "CLIPTokenizer",
        "do_lower_case": True}), encoding="utf-8")


SIZES = {
    # tiny: a few hundred thousand parameters, runs a 64x64 frame in well under a second on CPU
    "tiny": dict(unet=dict(block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32,
                           attention_head_dim=8, norm_num_groups=16, sample_size=8,
                           down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                           up_block_types=("CrossAttnUpBlock2D", "UpBlock2D")),
                 vae=dict(block_out_channels=(16, 32, 32, 32), layers_per_block=1, norm_num_groups=16,
                          latent_channels=4, sample_size=64),
                 text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           projection_dim=32),
                 cond_channels=(16, 32, 48, 64)),
    # Stable Diffusion 1.5 shapes (diffusers defaults are SD 1.x): for timing and memory only
    "sd15": dict(unet=dict(cross_attention_dim=768, sample_size=64),
                 vae=dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                          sample_size=512),
                 text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           projection_dim=768),
                 cond_channels=(16, 32, 96, 256)),
}


# SDXL-type UNets (two text encoders, pooled projection, size/crop time ids), built as diffusers'
# own SDXL tests build theirs; "sdxl" has SDXL 1.0's shapes (timing and memory only)
SDXL_SIZES = {
    "tiny": dict(unet=dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=8,
                           down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                           up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                           use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                           transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=6 * 8 + 32,
                           cross_attention_dim=32 + 64, norm_num_groups=16),
                 vae=SIZES["tiny"]["vae"],
                 text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           projection_dim=32),
                 # wider than the first, as in SDXL (single-file loaders tell the two encoders apart by width)
                 text_2=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                             projection_dim=32),
                 cond_channels=(16, 32, 48, 64)),
    "sdxl": dict(unet=dict(block_out_channels=(320, 640, 1280), layers_per_block=2, sample_size=128,
                           down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                           up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                           attention_head_dim=(5, 10, 20), use_linear_projection=True,
                           addition_embed_type="text_time", addition_time_embed_dim=256,
                           transformer_layers_per_block=(1, 2, 10), projection_class_embeddings_input_dim=2816,
                           cross_attention_dim=2048),
                 vae=SIZES["sd15"]["vae"],
                 text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           projection_dim=768),
                 text_2=dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                             projection_dim=1280),
                 cond_channels=(16, 32, 96, 256)),
}
# SD 2.x: OpenCLIP's 1024-wide text states (what tells the family apart) and linear projections
SD2_TINY = dict(unet=dict(SIZES["tiny"]["unet"], cross_attention_dim=1024, use_linear_projection=True),
                vae=SIZES["tiny"]["vae"],
                text=dict(hidden_size=1024, intermediate_size=64, num_hidden_layers=1, num_attention_heads=8,
                          projection_dim=32),
                cond_channels=(16, 32, 48, 64))
# SDXL's scheduler config (its scheduler_config.json: Euler, no sample clipping, leading spacing)
SDXL_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                      timestep_spacing="leading", prediction_type="epsilon")


def _text_model(spec: dict, vocab: int, projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=vocab, max_position_embeddings=77, bos_token_id=vocab - 2,
                            eos_token_id=vocab - 1, pad_token_id=vocab - 1, **spec)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _controlnet_from(unet, cond_channels):
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=cond_channels)
    # from_unet zero-initialises the output convolutions; give them small random weights so the
    # condition image actually changes the result (as in a trained ControlNet)
    with torch.no_grad():
        for m in list(controlnet.controlnet_down_blocks) + [controlnet.controlnet_mid_block]:
            m.weight.normal_(0.0, 0.02)
    return controlnet


def build_family_components(family: str, size: str = "tiny", seed: int = 0) -> dict:
    """Random components of an SD 2.x ("sd2", tiny, v-prediction) or SDXL ("sdxl", tiny or full-size)
    model: UNet, ControlNet from it, VAE, text encoder(s) and the family's usual scheduler."""
    from diffusers import AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, UNet2DConditionModel

    if family == "sd15":
        return build_components(size, seed)
    if family == "sd2" and size == "tiny":
        spec = SD2_TINY
    elif family == "sdxl" and size in SDXL_SIZES:
        spec = SDXL_SIZES[size]
    else:
        raise ValueError(f"build_family_components: no {size!r} {family} model")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**spec["unet"])
    vae_extra = dict(force_upcast=True, scaling_factor=0.13025) if family == "sdxl" else {}
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        **spec["vae"], **vae_extra)
    vocab = 49408 if size != "tiny" else TINY_VOCAB_SIZE
    parts = dict(unet=unet, vae=vae, text_encoder=_text_model(spec["text"], vocab),
                 controlnet=_controlnet_from(unet, spec["cond_channels"]))
    if family == "sdxl":
        parts["text_encoder_2"] = _text_model(spec["text_2"], vocab, projection=True)
        parts["scheduler"] = EulerDiscreteScheduler(**SDXL_SCHEDULER)
        parts["scheduler"].register_to_config(clip_sample=False, set_alpha_to_one=False)
    else:  # SD 2.1 at 768: v-prediction
        parts["scheduler"] = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                           clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                                           prediction_type="v_prediction")
    return parts


def save_family_folder(folder: str | Path, family: str, seed: int = 0) -> tuple[Path, Path]:
    """Save a tiny random model of ``family`` as a diffusers folder ``folder/model`` and its
    ControlNet as ``folder/controlnet`` (as :func:`save_model_folder` does for SD 1.5)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from transformers import CLIPTokenizer

    if family == "sd15":
        return save_model_folder(folder, seed=seed)
    folder = Path(folder)
    parts = build_family_components(family, "tiny", seed)
    tok_dir = folder / "_tokenizer"
    write_tiny_tokenizer(tok_dir)
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)
    if family == "sdxl":
        pipe = StableDiffusionXLPipeline(vae=parts["vae"], text_encoder=parts["text_encoder"],
                                         text_encoder_2=parts["text_encoder_2"], tokenizer=tokenizer,
                                         tokenizer_2=tokenizer, unet=parts["unet"], scheduler=parts["scheduler"],
                                         add_watermarker=False)
    else:
        pipe = StableDiffusionPipeline(vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=tokenizer,
                                       unet=parts["unet"], scheduler=parts["scheduler"], safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
    model_dir, cn_dir = folder / "model", folder / "controlnet"
    pipe.save_pretrained(model_dir)
    parts["controlnet"].save_pretrained(cn_dir)
    return model_dir, cn_dir


def build_components(size: str = "tiny", seed: int = 0) -> dict:
    """Random UNet, ControlNet, VAE, CLIP text model and DDIM scheduler of the given size."""
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if size not in SIZES:
        raise ValueError(f"size: {size!r} is not one of {', '.join(SIZES)}")
    spec = SIZES[size]
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**spec["unet"])
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        **spec["vae"])
    vocab = 49408 if size == "sd15" else TINY_VOCAB_SIZE  # CLIP's real size, or the made-up one
    text = CLIPTextModel(CLIPTextConfig(vocab_size=vocab, max_position_embeddings=77, bos_token_id=vocab - 2,
                                        eos_token_id=vocab - 1, pad_token_id=vocab - 1, **spec["text"]))
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=spec["cond_channels"])
    # from_unet zero-initialises the output convolutions; give them small random weights so the
    # condition image actually changes the result (as in a trained ControlNet)
    with torch.no_grad():
        for m in list(controlnet.controlnet_down_blocks) + [controlnet.controlnet_mid_block]:
            m.weight.normal_(0.0, 0.02)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return dict(unet=unet, vae=vae, text_encoder=text, controlnet=controlnet, scheduler=scheduler)


def save_model_folder(folder: str | Path, size: str = "tiny", seed: int = 0) -> tuple[Path, Path]:
    """Save a random SD model as a diffusers folder ``folder/model`` and its ControlNet as
    ``folder/controlnet``; returns both paths."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    folder = Path(folder)
    parts = build_components(size, seed)
    tok_dir = folder / "_tokenizer"
    write_tiny_tokenizer(tok_dir)
    if size == "sd15":
        raise ValueError("save_model_folder: the made-up tokenizer only fits the tiny text model")
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)
    pipe = StableDiffusionPipeline(vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=tokenizer,
                                   unet=parts["unet"], scheduler=parts["scheduler"], safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    model_dir, cn_dir = folder / "model", folder / "controlnet"
    pipe.save_pretrained(model_dir)
    parts["controlnet"].save_pretrained(cn_dir)
    return model_dir, cn_dir


def save_random_lora(model: str | Path, folder: str | Path, pipeline: str = "StableDiffusionPipeline") -> Path:
    """A LoRA with random (non-zero) weights on the attention projections of ``model``'s UNet, saved
    by diffusers' ``PIPELINE.save_lora_weights`` as users receive them; returns the file."""
    import diffusers
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(str(model), subfolder="unet")
    torch.manual_seed(1)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                init_lora_weights=False))
    getattr(diffusers, pipeline).save_lora_weights(str(folder), unet_lora_layers=get_peft_model_state_dict(unet),
                                                   safe_serialization=True)
    return Path(folder) / "pytorch_lora_weights.safetensors"
