"""Prompts -> the conditioning a family's UNet and ControlNets take.

SD 1.x / 2.x: the last hidden state of the CLIP text encoder. SDXL (as its pipelines do): the
penultimate hidden states of both encoders side by side, the second encoder's pooled projection
(``text_embeds``) and the micro-conditioning ``time_ids`` = (original size, crop top-left, target
size); a key frame is the whole frame at the working size, so original = target = (H, W), crop (0, 0).
"""
from __future__ import annotations

import dataclasses

import torch

@dataclasses.dataclass
class TextConditioning:
    emb: torch.Tensor
    """Per-token states, one row per text (``[negative; positive]`` with CFG)."""
    added: dict = dataclasses.field(default_factory=dict)
    """Extra ``added_cond_kwargs`` of the UNet and ControlNets (SDXL: text_embeds, time_ids)."""

def _tokens(tokenizer, texts: list[str], device) -> torch.Tensor:
    tok = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt")
    return tok.input_ids.to(device)

def encode(comps, texts: list[str], size: tuple[int, int]) -> TextConditioning:
    """Conditioning of ``texts`` (one row each) for frames of ``size`` = (height, width) pixels."""
    dev, dt = comps.device, comps.dtype
    if comps.family != "sdxl":
        emb = comps.text_encoder(_tokens(comps.tokenizer, texts, dev))[0]
        return TextConditioning(emb.to(dev, dt))
    states, pooled = [], None
    for tokenizer, encoder in ((comps.tokenizer, comps.text_encoder), (comps.tokenizer_2, comps.text_encoder_2)):
        out = encoder(_tokens(tokenizer, texts, dev), output_hidden_states=True)
        pooled = out[0]  # the last encoder's projection (CLIPTextModelWithProjection.text_embeds)
        states.append(out.hidden_states[-2])
    emb = torch.cat(states, dim=-1).to(dev, dt)
    h, w = size
    time_ids = torch.tensor([[h, w, 0, 0, h, w]] * len(texts), dtype=dt, device=dev)
    return TextConditioning(emb, {"text_embeds": pooled.to(dev, dt), "time_ids": time_ids})
