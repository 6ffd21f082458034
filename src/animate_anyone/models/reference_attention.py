"""Reference attention: the ReferenceNet writes, the denoising UNet reads.

Every spatial transformer block of the reference UNet stores the tokens it feeds to its
self-attention (the LayerNorm'd input, ``norm1(x)``) in a :class:`ReferenceBank` under its module
path. The denoising UNet's block at the same module path then attends over its own tokens *and*
those reference tokens (repeated over the frames):

    q = to_q(n),   k, v = to_k([n ; bank]), to_v([n ; bank])      n = norm1(x)   (tokens axis)

Both sides are diffusers attention processors keyed by module path, so no model code is patched
and the pairing of writer and reader blocks is explicit.

Optionally (``ModelConfig.reference_position_features``, our extension; off for the released
architecture) a reading block also carries a :class:`ReferencePosition`: every reference token's
score gains a learned multiple of how close it lies to the query's own position.
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


def pool_hold(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A hold mask ``(..., H, W)`` (pixels or cells) on a coarser ``grid`` ``(..., rows, cols)``,
    bool: a cell is held where anything under it is (adaptive max-pooling)."""
    flat = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    return (F.adaptive_max_pool2d(flat, tuple(grid))[:, 0] > 0).reshape(*mask.shape[:-2], *grid)


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
        latent_size: ``(height, width)`` of the denoiser's latent in the current call (set by the
            denoising UNet); with :attr:`reference_size` it gives each block's token grid to
            :class:`ReferencePosition`.
        cache_projections: reuse the key/value projections of the bank across calls. Only valid
            while weights do not change (inference); the cache is dropped with ``clear()``.
        reference_latent: the latent the bank was written from, ``(ref_batch, channels, h, w)``
            (set by the reference UNet): its size places the reference tokens, and a denoiser
            with a :class:`~animate_anyone.models.reference_latent.ReferenceLatentInput` reads it.
        hold: ``None`` or a bool tensor on the grid of the reference latent, ``(num_frames, h, w)``
            (the same for every sample) or ``(samples, num_frames, h, w)`` (one per sample that
            reads the reference): the reference cells that each frame must not read (its queries
            get no reference key there, and its reference latent input is zero at those cells).
            Set by the caller around a call (the pipeline's ``reference_hold``, training's
            ``data.reference_hold``); ``None`` or all False holds nothing back, all True gives
            the frame no reference at all.
    """

    def __init__(self, storage_dtype: torch.dtype | None = None):
        self.storage_dtype = storage_dtype
        self.features: dict[str, torch.Tensor] = {}
        self.uncond_samples = 0
        self.num_frames = 1
        self.latent_size: tuple[int, int] | None = None
        self.reference_latent: torch.Tensor | None = None
        self.cache_projections = False
        self.hold: torch.Tensor | None = None
        self._kv_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def reference_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the reference latent the bank was written from."""
        return None if self.reference_latent is None else tuple(self.reference_latent.shape[-2:])

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
        self.reference_latent = None

    def held(self, read_rows: int, grid: tuple[int, int]) -> torch.Tensor | None:
        """:attr:`hold` for the ``read_rows`` rows of a call that read the reference (batch-major
        over ``num_frames`` frames), max-pooled onto ``grid`` (a level's reference token grid, or a
        latent size): ``(read_rows, rows*cols)`` bool; None when nothing is held."""
        hold = self.hold
        if hold is None or read_rows == 0:
            return None
        samples = read_rows // self.num_frames
        frames_ok = hold.ndim in (3, 4) and hold.shape[-3] == self.num_frames and not read_rows % self.num_frames
        if not frames_ok or (hold.ndim == 4 and hold.shape[0] != samples):
            raise ValueError(f"hold has shape {tuple(hold.shape)} but the call has {self.num_frames} frames "
                             f"per sample and {read_rows} reading rows")
        size = self.reference_size
        if size is not None and tuple(hold.shape[-2:]) != tuple(size):
            raise ValueError(f"hold covers a {hold.shape[-2]}x{hold.shape[-1]} grid, the reference latent is "
                             f"{size[0]}x{size[1]}")
        if not hold.any():
            return None
        cells = pool_hold(hold, grid).reshape(-1, grid[0] * grid[1])  # (frames, or reading rows, cells)
        return cells if hold.ndim == 4 else cells.repeat(samples, 1)

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


def token_grid(size: tuple[int, int], tokens: int) -> tuple[int, int]:
    """``(rows, cols)`` of the UNet level whose blocks see ``tokens`` tokens, for a latent of ``size``:
    each level halves the sides, rounding up (diffusers' stride-2 convolutions with padding 1)."""
    h, w = int(size[0]), int(size[1])
    while h * w > tokens and h * w > 1:
        h, w = -(-h // 2), -(-w // 2)
    if h * w != tokens:
        raise ValueError(f"{tokens} tokens are no level of a {size[0]}x{size[1]} latent")
    return h, w


class ReferencePosition(nn.Module):
    """Position term of a reading block's reference attention (``reference_position_features``).

    Each token of a ``rows x cols`` grid gets ``features`` fixed sinusoids of its row and column
    (wavelengths 4, 8, 16, ... tokens; ``features / 4`` per axis, a sine and a cosine each), so
    the dot product of two tokens' features is ``sum_k cos(w_k dy) + cos(w_k dx)``: largest at
    the same place and falling off with distance. Head ``h`` adds ``GAIN * gain[h]`` times that
    (times the attention's scale) to the score of every reference token; the frame's own tokens
    get nothing. It is computed exactly by appending the features to the heads' queries and keys.
    ``gain`` starts at zero, so a model warm-started into a preset with this term computes what
    it did before until training moves the gains.
    """

    GAIN = 32.0  # Adam moves a parameter by about lr per step; with 8, 500 lab steps moved no gain past 0.09

    def __init__(self, heads: int, features: int):
        super().__init__()
        if features <= 0 or features % 4:
            raise ValueError(f"features must be a positive multiple of 4, not {features}")
        self.features = features
        self.gain = nn.Parameter(torch.zeros(heads))

    def grid_features(self, grid: tuple[int, int], into: tuple[int, int], device, dtype) -> torch.Tensor:
        """``(rows*cols, features)`` for the tokens of ``grid``, positions measured in cells of the
        grid ``into`` (the query's; a reference of another size is stretched onto it)."""
        rows, cols = grid
        y = (torch.arange(rows, device=device, dtype=torch.float32) + 0.5) * (into[0] / rows) - 0.5
        x = (torch.arange(cols, device=device, dtype=torch.float32) + 0.5) * (into[1] / cols) - 0.5
        omega = 2 * torch.pi / (4.0 * 2.0 ** torch.arange(self.features // 4, device=device, dtype=torch.float32))
        fy = torch.cat([torch.sin(y[:, None] * omega), torch.cos(y[:, None] * omega)], 1)  # (rows, f/2)
        fx = torch.cat([torch.sin(x[:, None] * omega), torch.cos(x[:, None] * omega)], 1)  # (cols, f/2)
        out = torch.cat([fy[:, None].expand(rows, cols, -1), fx[None].expand(rows, cols, -1)], -1)
        return out.reshape(rows * cols, self.features).to(dtype)

    def score_bias(self, grid: tuple[int, int], ref_grid: tuple[int, int], head_dim: int, device,
                   dtype) -> torch.Tensor:
        """``(heads, rows*cols, ref_tokens)``: what this term adds to each head's score of each
        reference token (what :func:`_attend_with_position` computes implicitly)."""
        own = self.grid_features(grid, grid, device, dtype)
        ref = self.grid_features(ref_grid, grid, device, dtype)
        return (self.GAIN * self.gain).to(dtype).view(-1, 1, 1) * (own @ ref.T) * head_dim**-0.5


def _attend_with_position(attn: Attention, position: ReferencePosition, q: torch.Tensor, k: torch.Tensor,
                          v: torch.Tensor, ref_tokens: int, grid: tuple[int, int],
                          ref_grid: tuple[int, int], keys_read: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`_attend` over ``[own tokens ; ref_tokens reference tokens]`` keys with the position
    term of ``position`` on the reference keys."""
    n, t, inner = q.shape
    heads, f = attn.heads, position.features
    qh, kh, vh = _heads(q, heads), _heads(k, heads), _heads(v, heads)  # (n, heads, tokens, d)
    d = qh.shape[-1]
    own = position.grid_features(grid, grid, q.device, q.dtype)  # (t, f)
    ref = position.grid_features(ref_grid, grid, q.device, q.dtype)  # (ref_tokens, f)
    gain = (position.GAIN * position.gain).to(q.dtype).view(1, heads, 1, 1)
    q_pos = (gain * own).expand(n, heads, t, f)
    k_pos = torch.cat([own.new_zeros(k.shape[1] - ref_tokens, f), ref]).expand(n, heads, -1, f)
    mask = None if keys_read is None else keys_read[:, None, None, :]
    out = F.scaled_dot_product_attention(torch.cat([qh, q_pos], -1), torch.cat([kh, k_pos], -1),
                                         F.pad(vh, (0, f)), attn_mask=mask, scale=d**-0.5)[..., :d]
    out = out.transpose(1, 2).reshape(n, t, inner).to(q.dtype)
    return attn.to_out[1](attn.to_out[0](out))


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    # (n, tokens, heads*d) -> (n, heads, tokens, d)
    n, t, _ = x.shape
    return x.view(n, t, heads, -1).transpose(1, 2)


def _attend(attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            keys_read: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-head SDPA on projected tensors ``(n, tokens, inner)`` -> output projection.
    ``keys_read``: ``(n, keys)`` bool, the keys each row's queries may attend to (None: all)."""
    n, t, inner = q.shape
    mask = None if keys_read is None else keys_read[:, None, None, :]
    out = F.scaled_dot_product_attention(_heads(q, attn.heads), _heads(k, attn.heads), _heads(v, attn.heads),
                                         attn_mask=mask)
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


def reference_repeat(rows: int, plain_rows: int, ref_batch: int) -> int:
    """How a denoiser call's ``rows`` (``batch * frames``, batch-major) read ``ref_batch`` references:
    the ``plain_rows`` leading rows read none, and each reference is read by that many consecutive
    rows of the rest (returned). The one rule for everything that reads the bank per row."""
    if not 0 <= plain_rows <= rows:
        raise ValueError(f"{plain_rows} unconditional rows requested but the call has {rows}")
    if (rows - plain_rows) % ref_batch:
        raise ValueError(f"the bank holds {ref_batch} references, which does not divide the "
                         f"{rows - plain_rows} rows that read them")
    return (rows - plain_rows) // ref_batch


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
        ref_k, ref_v = ref_kv  # (ref_batch, ref_tokens, inner)
        repeat = reference_repeat(rows, plain_rows, ref_k.shape[0])
        if repeat == 0:
            return _attend(attn, q, k, v)
        # (ref_batch, ref_tokens, inner) -> (read rows, ref_tokens, inner), batch-major over frames
        ref_k = ref_k.repeat_interleave(repeat, dim=0)
        ref_v = ref_v.repeat_interleave(repeat, dim=0)
        keys = torch.cat([k[plain_rows:], ref_k], dim=1)  # (read_rows, tokens + ref_tokens, inner)
        values = torch.cat([v[plain_rows:], ref_v], dim=1)
        keys_read = self._keys_read(rows - plain_rows, q.shape[1], ref_k.shape[1], q.device)
        position = getattr(attn, "reference_position", None)
        if position is None:
            out_ref = _attend(attn, q[plain_rows:], keys, values, keys_read)
        else:
            if self.bank.latent_size is None or self.bank.reference_size is None:
                raise RuntimeError("the bank does not know the latent sizes that ReferencePosition needs")
            grid = token_grid(self.bank.latent_size, q.shape[1])
            ref_grid = token_grid(self.bank.reference_size, ref_k.shape[1])
            out_ref = _attend_with_position(attn, position, q[plain_rows:], keys, values, ref_k.shape[1],
                                            grid, ref_grid, keys_read)
        if plain_rows == 0:
            return out_ref
        out_plain = _attend(attn, q[:plain_rows], k[:plain_rows], v[:plain_rows])
        return torch.cat([out_plain, out_ref], dim=0)

    def _keys_read(self, read_rows: int, own_tokens: int, ref_tokens: int, device) -> torch.Tensor | None:
        """``(read_rows, own_tokens + ref_tokens)`` bool: the keys each reading row may attend to
        under the bank's :attr:`~ReferenceBank.hold` (its own tokens always); None without a hold."""
        if self.bank.hold is None:
            return None
        if self.bank.reference_size is None:
            raise RuntimeError("the bank does not know the reference latent size that a hold needs")
        held = self.bank.held(read_rows, token_grid(self.bank.reference_size, ref_tokens))
        if held is None:
            return None
        own = torch.ones(read_rows, own_tokens, dtype=torch.bool, device=device)
        return torch.cat([own, ~held.to(device)], dim=1)


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


def add_reference_position(unet: nn.Module, features: int) -> list[str]:
    """Give every spatial self-attention of the denoising ``unet`` a :class:`ReferencePosition`
    (submodule ``attn1.reference_position``: its gains are part of the UNet's state dict)."""
    paths = spatial_self_attention_paths(unet)
    for path in paths:
        attn = unet.get_submodule(path + ".attn1")
        attn.add_module("reference_position", ReferencePosition(attn.heads, features))
    return paths


def install_reference_reader(unet: nn.Module, bank: ReferenceBank) -> list[str]:
    """Make every spatial self-attention of ``unet`` read reference tokens from ``bank``."""
    return _install(unet, bank, ReferenceReadProcessor)
