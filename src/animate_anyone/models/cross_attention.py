"""Cross-attention to a single context token, without the attention.

Animate Anyone conditions its UNets on the CLIP image embedding as a context of **one** token
(``(batch, 1, 768)``; the unconditional half of classifier-free guidance passes zeros). Attention
over one key is trivial: the softmax of a single score is exactly 1, so every query receives that
key's value and the output is ``to_out(to_v(context))`` at every position, whatever ``to_q`` and
``to_k`` compute. diffusers' processor still projects every spatial token to a query and runs the
attention kernel; :class:`SingleTokenCrossAttnProcessor` skips both and broadcasts the one output
row. The result is the same up to float rounding of the output projection (bit-identical in our
tests on CPU).

It is taken only where it is exact and safe: no attention mask, a context of one token, a plain SD
attention module, and **gradients off**. During training the full computation runs, so every
parameter keeps receiving a gradient (zero for ``to_q``/``to_k``, as before) and distributed
data-parallel training sees the same set of used parameters at every step.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

from .reference_attention import is_plain_attention, spatial_self_attention_paths


class SingleTokenCrossAttnProcessor:
    """Cross-attention processor with the one-context-token shortcut; otherwise ``AttnProcessor2_0``."""

    def __init__(self):
        self._sdpa = AttnProcessor2_0()

    @staticmethod
    def takes_shortcut(attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states, attention_mask) -> bool:
        return (
            encoder_hidden_states is not None
            and encoder_hidden_states.ndim == 3
            and encoder_hidden_states.shape[1] == 1
            and hidden_states.ndim == 3
            and attention_mask is None
            and not torch.is_grad_enabled()
            and is_plain_attention(attn)
        )

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None,
                 attention_mask=None, temb=None, *args, **kwargs) -> torch.Tensor:
        if not self.takes_shortcut(attn, hidden_states, encoder_hidden_states, attention_mask):
            return self._sdpa(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        # hidden_states: (rows, tokens, channels); encoder_hidden_states: (rows, 1, context_dim)
        value = attn.to_v(encoder_hidden_states)  # (rows, 1, inner): the softmax weight of the one key is 1
        out = attn.to_out[1](attn.to_out[0](value))  # (rows, 1, channels)
        return out.expand(-1, hidden_states.shape[1], -1)


def spatial_cross_attention_modules(unet: nn.Module) -> list[Attention]:
    """The ``attn2`` (cross-attention) modules of the spatial transformer blocks of ``unet``; the
    motion modules' ``attn2`` is a second temporal self-attention and is left out."""
    modules = dict(unet.named_modules())
    return [modules[path + ".attn2"] for path in spatial_self_attention_paths(unet)
            if isinstance(modules.get(path + ".attn2"), Attention)]


def install_single_token_cross_attention(unet: nn.Module) -> int:
    """Give every spatial cross-attention of ``unet`` the shortcut processor; returns how many."""
    modules = spatial_cross_attention_modules(unet)
    for attn in modules:
        attn.set_processor(SingleTokenCrossAttnProcessor())
    return len(modules)
