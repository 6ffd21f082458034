"""Reference attention: the ReferenceNet writes, the denoising UNet reads.

Every spatial transformer block of the reference UNet stores the tokens it feeds to its
self-attention (the LayerNorm'd input, ``norm1(x)``) in a :class:`ReferenceBank` under its module
path. The denoising UNet's block at the same module path then attends over its own tokens *and*
those reference tokens (repeated over the frames):

    q = to_q(n),   k, v = to_k([n ; bank]), to_v([n ; bank])      n = norm1(x)   (tokens axis)

Both sides are diffusers attention processors keyed by module path, so no model code is patched
and the pairing of writer and reader blocks is explicit.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention
from torch import nn
from torch.nn import functional as F


def spatial_self_attention_paths(unet: nn.Module) -> list[str]:
    """Module paths of the spatial transformer blocks whose ``attn1`` takes part in reference
    attention, in module order, e.g. ``down_blocks.0.attentions.0.transformer_blocks.0``.

    Temporal (motion-module) blocks are excluded: their paths go through ``motion_modules``.
    """
    paths = []
    for name, module in unet.named_modules():
        if name.endswith(".attn1") and isinstance(module, Attention) and ".attentions." in name:
            if "motion_modules" in name:
                continue
            paths.append(name[: -len(".attn1")])
    return paths


class ReferenceBank:
    """Reference features keyed by transformer-block module path.

    Args:
        storage_dtype: dtype the features are stored in. ``torch.float16`` reproduces the
            reference implementation exactly (it rounds the bank to fp16 even in fp32 runs);
            ``None`` stores them as computed.

    Attributes:
        features: module path -> ``(ref_batch, tokens, channels)`` tensor.
        uncond_samples: number of leading *samples* (not rows) of every denoiser call that must
            not see the reference (classifier-free guidance's unconditional half). Set by the
            caller around a denoiser call; 0 means every sample reads the bank.
        num_frames: frames per sample of the current denoiser call (set by the denoising UNet).
        cache_projections: reuse the key/value projections of the bank across calls. Only valid
            while weights do not change (inference); the cache is dropped with ``clear()``.
    """

    def __init__(self, storage_dtype: torch.dtype | None = None):
        self.storage_dtype = storage_dtype
        self.features: dict[str, torch.Tensor] = {}
        self.uncond_samples = 0
        self.num_frames = 1
        self.cache_projections = False
        self._kv_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.features)

    def store(self, path: str, tokens: torch.Tensor) -> None:
        if self.storage_dtype is not None:
            tokens = tokens.to(self.storage_dtype)
        self.features[path] = tokens
        self._kv_cache.pop(path, None)

    def clear(self) -> None:
        self.features.clear()
        self._kv_cache.clear()

    def key_value(self, path: str, attn: Attention, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Key and value projections ``(ref_batch, tokens, inner_dim)`` of the stored tokens."""
        tokens = self.features.get(path)
        if tokens is None:
            return None
        if self.cache_projections and path in self._kv_cache:
            return self._kv_cache[path]
        tokens = tokens.to(dtype)
        kv = (attn.to_k(tokens), attn.to_v(tokens))
        if self.cache_projections:
            self._kv_cache[path] = kv
        return kv


def is_plain_attention(attn: Attention) -> bool:
    """Whether ``attn`` is plain SD attention: no extra norms, no residual, no output rescaling
    (what our processors assume when they compute the attention themselves)."""
    return (
        attn.spatial_norm is None
        and attn.group_norm is None
        and attn.norm_q is None
        and attn.norm_k is None
        and attn.norm_cross is None
        and not attn.residual_connection
        and attn.rescale_output_factor == 1.0
    )


def _check_plain(attn: Attention) -> None:
    if not is_plain_attention(attn):
        raise ValueError("reference attention supports plain SD self-attention blocks only")


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    # (n, tokens, heads*d) -> (n, heads, tokens, d)
    n, t, _ = x.shape
    return x.view(n, t, heads, -1).transpose(1, 2)


def _attend(attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Multi-head SDPA on projected tensors ``(n, tokens, inner)`` -> output projection."""
    n, t, inner = q.shape
    out = F.scaled_dot_product_attention(_heads(q, attn.heads), _heads(k, attn.heads), _heads(v, attn.heads))
    out = out.transpose(1, 2).reshape(n, t, inner).to(q.dtype)  # (n, tokens, inner)
    return attn.to_out[1](attn.to_out[0](out))


class ReferenceWriteProcessor:
    """Self-attention that first stores its input tokens in the bank (ReferenceNet side)."""

    def __init__(self, bank: ReferenceBank, path: str):
        self.bank = bank
        self.path = path

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None,
                 attention_mask=None, **kwargs) -> torch.Tensor:
        # hidden_states: (ref_batch, tokens, channels) = norm1(x) of the transformer block
        self.bank.store(self.path, hidden_states)
        q = attn.to_q(hidden_states)
        return _attend(attn, q, attn.to_k(hidden_states), attn.to_v(hidden_states))


class ReferenceReadProcessor:
    """Self-attention over own tokens plus the bank's reference tokens (denoising-UNet side).

    With an empty bank, or for the ``bank.uncond_samples`` leading samples, it is plain
    self-attention.
    """

    def __init__(self, bank: ReferenceBank, path: str):
        self.bank = bank
        self.path = path

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None,
                 attention_mask=None, **kwargs) -> torch.Tensor:
        # hidden_states: (batch*frames, tokens, channels), batch-major
        rows = hidden_states.shape[0]
        q = attn.to_q(hidden_states)
        k = attn.to_k(hidden_states)
        v = attn.to_v(hidden_states)
        ref_kv = self.bank.key_value(self.path, attn, hidden_states.dtype)
        if ref_kv is None:
            return _attend(attn, q, k, v)

        plain_rows = self.bank.uncond_samples * self.bank.num_frames
        if not 0 <= plain_rows <= rows:
            raise ValueError(f"{plain_rows} unconditional rows requested but the call has {rows}")
        ref_k, ref_v = ref_kv  # (ref_batch, ref_tokens, inner)
        read_rows = rows - plain_rows
        if read_rows == 0:
            return _attend(attn, q, k, v)
        if read_rows % ref_k.shape[0]:
            raise ValueError(
                f"reference bank at {self.path} has {ref_k.shape[0]} rows, which does not divide "
                f"the {read_rows} rows that read it"
            )
        # (ref_batch, ref_tokens, inner) -> (read_rows, ref_tokens, inner), batch-major over frames
        repeat = read_rows // ref_k.shape[0]
        ref_k = ref_k.repeat_interleave(repeat, dim=0)
        ref_v = ref_v.repeat_interleave(repeat, dim=0)
        out_ref = _attend(
            attn,
            q[plain_rows:],
            torch.cat([k[plain_rows:], ref_k], dim=1),  # (read_rows, tokens + ref_tokens, inner)
            torch.cat([v[plain_rows:], ref_v], dim=1),
        )
        if plain_rows == 0:
            return out_ref
        out_plain = _attend(attn, q[:plain_rows], k[:plain_rows], v[:plain_rows])
        return torch.cat([out_plain, out_ref], dim=0)


def _install(unet: nn.Module, bank: ReferenceBank, processor_cls) -> list[str]:
    paths = spatial_self_attention_paths(unet)
    if not paths:
        raise ValueError("no spatial self-attention blocks found for reference attention")
    modules = dict(unet.named_modules())
    for path in paths:
        attn = modules[path + ".attn1"]
        _check_plain(attn)
        attn.set_processor(processor_cls(bank, path))
    return paths


def install_reference_writer(unet: nn.Module, bank: ReferenceBank) -> list[str]:
    """Make every spatial self-attention of ``unet`` write its input tokens into ``bank``."""
    return _install(unet, bank, ReferenceWriteProcessor)


def install_reference_reader(unet: nn.Module, bank: ReferenceBank) -> list[str]:
    """Make every spatial self-attention of ``unet`` read reference tokens from ``bank``."""
    return _install(unet, bank, ReferenceReadProcessor)
