"""Style-aware cross-frame attention as a diffusers attention processor.

In the chosen self-attention layers, keys and values come from the hidden states that the anchor
frame and the previous key frame had at the same layer and step:
    out = softmax(Q K'^T / sqrt(d)) V',  K' = W^K [v_anchor; v_prev],  V' = W^V [v_anchor; v_prev].
The processor computes attention itself with ``F.scaled_dot_product_attention``, so it does not
depend on (and cannot be silently bypassed by) whichever attention backend diffusers would pick.
The hidden states (not K/V) are cached: half the memory, and LoRA layers on to_k/to_v still apply.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Layers = Literal["decoder", "decoder-light", "all"]


class CrossFrameState:
    """Shared by all processors of one UNet: the current step, the reference caches and recording.

    ``refs`` are caches (``{(layer, step): hidden states}``) of the frames to attend to; empty means
    plain self-attention. When ``recording`` is a dict, each layer stores its input there.
    """

    def __init__(self) -> None:
        self.step: int = 0
        self.refs: list[dict[tuple[str, int], torch.Tensor]] = []
        self.recording: dict[tuple[str, int], torch.Tensor] | None = None
        self.store_device: torch.device | None = None  # where recordings go (None: where they are computed)
        self.calls: int = 0  # processor invocations with references (lets tests check it ran)

    def reset(self) -> None:
        self.refs = []
        self.recording = None
        self.step = 0


class CrossFrameAttnProcessor:
    """Self-attention whose keys/values are the reference frames' hidden states at this (layer, step)."""

    def __init__(self, name: str, state: CrossFrameState):
        self.name = name
        self.state = state

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args, **kwargs) -> torch.Tensor:
        if encoder_hidden_states is not None:
            raise ValueError(f"{self.name}: cross-frame attention is only for self-attention layers")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        key_src = hidden_states
        st = self.state
        slot = (self.name, st.step)
        if st.recording is not None:
            kept = hidden_states.detach()
            st.recording[slot] = kept if st.store_device is None else kept.to(st.store_device)
        if st.refs:
            refs = []
            for cache in st.refs:
                ref = cache.get(slot)
                if ref is None:
                    raise RuntimeError(f"cross-frame attention: no cached hidden states for layer {self.name} "
                                       f"at step {st.step}; the reference frame was rendered with other settings")
                if ref.shape != hidden_states.shape:
                    raise RuntimeError(f"cross-frame attention: cached {tuple(ref.shape)} vs current "
                                       f"{tuple(hidden_states.shape)} at layer {self.name}")
                refs.append(ref.to(device=hidden_states.device, dtype=hidden_states.dtype))
            key_src = torch.cat(refs, dim=1)  # [v_anchor; v_prev] along the token axis
            st.calls += 1

        query = attn.to_q(hidden_states)
        key = attn.to_k(key_src)
        value = attn.to_v(key_src)
        heads = attn.heads
        head_dim = key.shape[-1] // heads
        query = query.view(batch, -1, heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if attention_mask is not None and not st.refs:
            attention_mask = attn.prepare_attention_mask(attention_mask, key.shape[2], batch)
            attention_mask = attention_mask.view(batch, heads, -1, attention_mask.shape[-1])
        else:
            attention_mask = None  # a self-attention mask does not apply to the references' tokens
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0,
                                             is_causal=False, scale=attn.scale)
        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def select_layers(unet, layers: Layers) -> list[str]:
    """Names (as in ``unet.attn_processors``) of the self-attention layers that get cross-frame attention."""
    names = [n for n in unet.attn_processors if n.endswith("attn1.processor")]
    if layers == "all":
        return names
    if layers not in ("decoder", "decoder-light"):
        raise ValueError(f"cross_frame_layers: {layers!r} is not one of 'decoder', 'decoder-light', 'all'")
    chosen = [n for n in names if n.startswith("up_blocks.")]
    if layers == "decoder-light":
        widest = max(unet.config.block_out_channels)
        modules = dict(unet.named_modules())
        chosen = [n for n in chosen if modules[n[: -len(".processor")]].to_q.in_features != widest]
    return chosen


def install(unet, layers: Layers, state: CrossFrameState) -> list[str]:
    """Put cross-frame processors on the chosen layers (others keep theirs); returns the layer names."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    chosen = select_layers(unet, layers)
    procs = dict(unet.attn_processors)
    for n, p in procs.items():  # layers left over from an earlier install go back to plain SDPA
        if isinstance(p, CrossFrameAttnProcessor):
            procs[n] = AttnProcessor2_0()
    for n in chosen:
        procs[n] = CrossFrameAttnProcessor(n, state)
    unet.set_attn_processor(procs)
    return chosen


def uninstall(unet) -> None:
    """Put plain SDPA attention back wherever a cross-frame processor is installed."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    procs = dict(unet.attn_processors)
    if any(isinstance(p, CrossFrameAttnProcessor) for p in procs.values()):
        unet.set_attn_processor({n: AttnProcessor2_0() if isinstance(p, CrossFrameAttnProcessor) else p
                                 for n, p in procs.items()})


def verify_installed(unet, names: list[str]) -> None:
    """Raise if something (e.g. enabling another attention backend) replaced our processors."""
    procs = unet.attn_processors
    lost = [n for n in names if not isinstance(procs.get(n), CrossFrameAttnProcessor)]
    if lost:
        raise RuntimeError(f"cross-frame attention was replaced on {len(lost)} layers (e.g. {lost[0]}); "
                           "do not switch attention backends after the stage has set up its processors")
