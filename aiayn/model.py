"""The Transformer of "Attention Is All You Need" (Vaswani et al., 2017), section 3.

One file, read top to bottom:

- :func:`sinusoid_table`: the positional encodings of section 3.5 (a buffer, not learned);
  ``model.positional: learned`` replaces them by trained tables (Table 3, row E).
- :class:`SelfAttention`, :class:`CrossAttention`: multi-head scaled dot-product attention
  (3.2.1, 3.2.2) through ``F.scaled_dot_product_attention``; self-attention projects Q, K
  and V with one fused matrix, cross-attention projects K and V of the encoder output once.
  Heads have d_k = d_v = d_model / h unless ``model.d_k``/``model.d_v`` say otherwise
  (Table 3, rows A-C): Q and K are h d_k wide, V is h d_v wide, W^O maps h d_v to d_model.
- :class:`FeedForward`: the position-wise feed-forward network (3.3).
- Every projection is an :class:`aiayn.packed.Linear` (an ``nn.Linear``; float32 CPU
  inference multiplies by a pre-packed copy of the weight), the pre-softmax projection goes
  through :func:`aiayn.packed.linear` likewise.
- :class:`EncoderLayer`, :class:`DecoderLayer`: sub-layers with residual dropout and layer
  normalisation (5.4), post-norm as in the paper (``x = LayerNorm(x + Dropout(Sublayer(x)))``)
  or pre-norm (``x = x + Dropout(Sublayer(LayerNorm(x)))``, plus a final LayerNorm).
- :class:`Transformer`: embeddings scaled by sqrt(d_model) (3.4) with three-way weight tying,
  ``forward``/``encode``/``decode`` for training, and ``init_state``/``decode_step`` with a
  key/value cache (:class:`DecoderState`) for incremental decoding (beam search), and
  ``capture_attention`` to read the softmax weights back (:class:`AttentionWeights`);
  ``watch_cross_attention`` for the coverage penalty. It implements
  :class:`aiayn.decode.protocol.CoverageReadable`, the interface beam search decodes with.
- :data:`PRESETS`, :func:`count_parameters` (the closed form:
  :func:`aiayn.model_info.parameter_formula`).

Masks. Padding id is 0 (:data:`PAD`). The encoder builds one boolean key mask per forward
from the source padding (True = may attend, the convention of SDPA) and reuses it in every
encoder self-attention and decoder cross-attention; without padding it passes no mask at
all. Decoder self-attention is causal (``is_causal=True``): target sequences are padded on
the right, so a real position never sees a padded one and needs no extra key mask. Padded
query rows of the encoder still attend to the real keys of their sentence, so no softmax
row is ever fully masked (a source of all padding is the one exception; its row is allowed
to attend everywhere instead, so no NaN can appear).

Initialisation (documented in :meth:`Transformer.reset_parameters`): Xavier uniform for
every projection (each of the fused Q/K/V blocks on its own), zero biases, embeddings and an
untied output projection N(0, d_model^-0.5) so that the sqrt(d_model)-scaled embeddings have
unit variance (as fairseq and tensor2tensor do), learned position tables N(0, d_model^-0.5)
(as fairseq's learned positions), LayerNorm weight 1 and bias 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from aiayn.config import ModelConfig
from aiayn.errors import AiaynError, ConfigError
from aiayn.packed import Linear, PackCache
from aiayn.packed import linear as packed_linear
from aiayn.vocab import PAD

# Table 3 of the paper, and the demo's model: the one owner of the model sections of
# configs/*.yaml, which `aiayn preset --write` generates from it (aiayn.presets).
PRESETS: dict[str, ModelConfig] = {
    "base": ModelConfig(
        encoder_layers=6, decoder_layers=6, d_model=512, d_ff=2048, n_heads=8, dropout=0.1
    ),
    "big": ModelConfig(
        encoder_layers=6, decoder_layers=6, d_model=1024, d_ff=4096, n_heads=16, dropout=0.3
    ),
    "demo": ModelConfig(
        encoder_layers=2,
        decoder_layers=2,
        d_model=192,
        d_ff=768,
        n_heads=4,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        norm="pre",
        tie_embeddings=True,
        max_positions=512,
    ),
}


# ----------------------------------------------------------------------------- positions


def sinusoid_table(n_positions: int, d_model: int) -> Tensor:
    """Positional encodings of section 3.5, shape (n_positions, d_model).

    PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)).
    """
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]  # (P, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(D/2),)
    angle = pos / torch.pow(10000.0, two_i / d_model)  # (P, ceil(D/2))
    table = torch.zeros(n_positions, d_model + d_model % 2, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle)
    return table[:, :d_model].float()


# ----------------------------------------------------------------------------- dropout


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1 - p).

    On CUDA this is ``F.dropout`` (a fused kernel). On CPU, ``F.dropout`` draws one
    Bernoulli sample per element, which costs a small model as much as a sixth of its
    training step; here each 64 random bits of torch's default generator give four 16-bit
    uniforms, so p is rounded to a multiple of 2^-16 (0.1 -> 0.100006) and the scale uses
    the rounded p (the output stays unbiased). Same seed, same masks.
    """
    if not training or p == 0.0:
        return x
    drop = round(p * 65536)  # P(drop) = drop / 2^16
    if x.device.type != "cpu" or drop >= 65536:
        return F.dropout(x, p, True)
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None)  # full range
    keep = bits.view(torch.int16)[:n].view(x.shape) >= drop - 32768  # uniform in [-2^15, 2^15)
    return x * keep.to(x.dtype).mul_(65536 / (65536 - drop))


class Dropout(nn.Module):
    """:func:`dropout` as a module (applied in training mode only)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# ----------------------------------------------------------------------------- attention


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """(B, T, h d) -> (B, h, T, d), a view."""
    B, T, D = x.shape
    return x.view(B, T, n_heads, D // n_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, h, T, d_v) -> (B, T, h * d_v): the Concat(head_1, ..., head_h) of 3.2.2."""
    B, h, T, dk = x.shape
    return x.transpose(1, 2).reshape(B, T, h * dk)


class KVCache:
    """Self-attention keys and values of the positions decoded so far, for one decoder layer.

    Held in buffers of shape (B, h, capacity, d_k) and (B, h, capacity, d_v) whose capacity
    doubles when full, so a decoding step writes one position instead of copying the past.
    """

    def __init__(self, capacity: int = 32):
        self.k: Tensor | None = None  # (B, h, capacity, d_k)
        self.v: Tensor | None = None  # (B, h, capacity, d_v)
        self.length = 0
        self._initial = max(1, capacity)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add one position, k (B, h, 1, d_k) and v (B, h, 1, d_v); return all keys
        (B, h, t+1, d_k) and values (B, h, t+1, d_v)."""
        if self.k is None:
            B, h, _, dk = k.shape
            self.k = k.new_empty(B, h, self._initial, dk)
            self.v = v.new_empty(B, h, self._initial, v.size(-1))
        elif self.length == self.k.size(2):
            self.k, self.v = _doubled(self.k), _doubled(self.v)
        t = self.length
        self.k[:, :, t : t + 1] = k
        self.v[:, :, t : t + 1] = v
        self.length = t + 1
        return self.k[:, :, : t + 1], self.v[:, :, : t + 1]

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` (B',) of the batch, in that order.

        Copying the cache is most of the memory traffic of a beam-search step, so: rows that
        keep their own beam are not copied; when the batch size stays and fewer than half the
        rows change, only those are overwritten, in place; otherwise the buffers are gathered
        through a 2-D view (B, h capacity d_k), about 2.5x faster than along dim 0 of the
        4-D tensor (the buffers are always contiguous: allocated, doubled or gathered here).
        """
        if self.k is None:
            return
        B = self.k.size(0)
        k2, v2 = self.k.view(B, -1), self.v.view(B, -1)  # (B, h capacity d_k|d_v)
        if index.size(0) == B:
            moved = index.ne(torch.arange(B, device=index.device)).nonzero().squeeze(1)  # (m,)
            if moved.numel() == 0:
                return
            if 2 * moved.numel() < B:
                source = index.index_select(0, moved)  # gathered before any row is overwritten
                k2.index_copy_(0, moved, k2.index_select(0, source))
                v2.index_copy_(0, moved, v2.index_select(0, source))
                return
        n = index.size(0)
        self.k = k2.index_select(0, index).view(n, *self.k.shape[1:])  # (B', h, capacity, d_k)
        self.v = v2.index_select(0, index).view(n, *self.v.shape[1:])  # (B', h, capacity, d_v)


def _doubled(buffer: Tensor) -> Tensor:
    """A (B, h, 2 capacity, d) buffer whose first half is ``buffer`` (B, h, capacity, d)."""
    B, h, capacity, dk = buffer.shape
    grown = buffer.new_empty(B, h, 2 * capacity, dk)
    grown[:, :, :capacity] = buffer
    return grown


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    is_causal: bool,
    dropout: float,
    record: list[Tensor] | None = None,
) -> Tensor:
    """Scaled dot-product attention (3.2.1): softmax(Q K^T / sqrt(d_k)) V.

    q (B, h, T, d_k), k (B, h, S, d_k), v (B, h, S, d_v), mask (B, 1, 1, S) bool (True: may
    attend) or None; returns (B, h, T, d_v).

    Under bf16 autocast on CPU the attention itself runs in float32: PyTorch's CPU bf16
    attention backward is many times slower than float32, while the projections around it
    (the bulk of the FLOPs) keep running in bf16 on the CPU's matrix units.

    ``record``: a list to append the softmax weights (B, h, T, S) to (see
    :meth:`Transformer.capture_attention`); the attention is then computed by
    :func:`attend_with_weights` instead of the fused kernel. None (always, outside a
    capture) is the fused path, untouched.
    """
    if record is not None:
        return attend_with_weights(q, k, v, mask, is_causal, dropout, record)
    if _explicit_is_faster(q, dropout):
        if q.dtype == torch.float32 and not is_causal and not torch.is_autocast_enabled("cpu"):
            return few_query_attention(q, k, v, mask)
        return explicit_attention(q, k, v, mask, is_causal, dropout)[0]
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        with torch.autocast("cpu", enabled=False):
            out = F.scaled_dot_product_attention(
                q.float(),
                k.float(),
                v.float(),
                attn_mask=mask,
                dropout_p=dropout,
                is_causal=is_causal,
            )
        return out.to(torch.bfloat16)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal
    )


# Queries per (sentence, head) up to which the explicit matrix products beat the fused kernel
# on a CPU: incremental decoding has 1 (self-attention) or the beam width (cross-attention,
# beams grouped per sentence). There PyTorch's CPU flash-attention kernel costs 3-8x more
# than two small matrix products and a softmax (demo dims, beam 4, one thread).
EXPLICIT_MAX_QUERIES = 8


def _explicit_is_faster(q: Tensor, dropout: float) -> bool:
    """Inference on a CPU with a few query rows: see :data:`EXPLICIT_MAX_QUERIES`."""
    return (
        q.device.type == "cpu"
        and q.size(-2) <= EXPLICIT_MAX_QUERIES
        and dropout == 0.0
        and not torch.is_grad_enabled()
    )


def attention_weights(q: Tensor, k: Tensor, mask: Tensor | None, is_causal: bool) -> Tensor:
    """A = softmax(Q K^T / sqrt(d_k)) in q's dtype, (B, h, T, S); scaling and masking in place.

    q (B, h, T, d_k), k (B, h, S, d_k), mask (B, 1, 1, S) bool (True: may attend) or None;
    ``is_causal`` masks key s > query t (the fused kernel's top-left alignment)."""
    scores = torch.matmul(q, k.transpose(-2, -1)).div_(math.sqrt(q.size(-1)))  # (B, h, T, S)
    if is_causal:
        T, S = scores.shape[-2:]
        future = torch.ones(T, S, dtype=torch.bool, device=q.device).triu(1)  # (T, S)
        scores.masked_fill_(future, float("-inf"))
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def explicit_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, is_causal: bool, dropout: float
) -> tuple[Tensor, Tensor]:
    """softmax(Q K^T / sqrt(d_k)) V written out: (A V in q's dtype (B, h, T, d_v), A).

    Same arguments and result (up to float rounding) as the fused kernel. A (B, h, T, S) is
    float32 whatever the autocast (:func:`attention_weights` on float32 copies), so every row
    sums to 1 to float32 precision.
    """
    with torch.autocast(q.device.type, enabled=False):
        weights = attention_weights(q.float(), k.float(), mask, is_causal)  # (B, h, T, S)
        used = F.dropout(weights, dropout, True) if dropout > 0.0 else weights
        return (used @ v.float()).to(q.dtype), weights  # (B, h, T, d_v), (B, h, T, S)


def few_query_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """:func:`explicit_attention`'s A V for float32 inference without autocast, bit for bit,
    without its casts and autocast switch: a decoding step calls it in every attention of
    every layer. q (B, h, T, d_k), k (B, h, S, d_k), v (B, h, S, d_v), mask (B, 1, 1, S) bool
    or None -> (B, h, T, d_v)."""
    return torch.matmul(attention_weights(q, k, mask, False), v)  # (B, h, T, d_v)


def attend_with_weights(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    is_causal: bool,
    dropout: float,
    record: list[Tensor],
) -> Tensor:
    """:func:`attend` through :func:`explicit_attention`, so that the softmax weights can be
    kept: appends A (float32 (B, h, T, S), detached) to ``record``, returns A V."""
    out, weights = explicit_attention(q, k, v, mask, is_causal, dropout)
    record.append(weights.detach())
    return out


class SelfAttention(nn.Module):
    """Multi-head self-attention (3.2.2), Q, K and V from one fused projection.

    ``qkv`` stacks W^Q, W^K and W^V of all heads, (2 h d_k + h d_v, D); ``out`` is W^O,
    (D, h d_v). With the paper's d_k = d_v = D / h these are (3 D, D) and (D, D).
    """

    def __init__(self, d_model: int, n_heads: int, d_k: int, d_v: int, attention_dropout: float):
        super().__init__()
        self.n_heads, self.d_k, self.d_v = n_heads, d_k, d_v
        self.attention_dropout = attention_dropout
        self.qkv = Linear(d_model, n_heads * (2 * d_k + d_v))
        self.out = Linear(n_heads * d_v, d_model)
        self.record: list[Tensor] | None = None  # a list: keep the softmax weights (capture)

    def blocks(self) -> list[int]:
        """Rows of W^Q, W^K, W^V in the fused ``qkv`` weight."""
        h = self.n_heads
        return [h * self.d_k, h * self.d_k, h * self.d_v]

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
    ) -> Tensor:
        """x (B, T, D) -> (B, T, D).

        mask (B, 1, 1, T) bool or None; ``is_causal``: position t attends to positions <= t.
        With ``cache`` (incremental decoding, T == 1): append this position's K and V to the
        cache and attend over every cached position.
        """
        B, T, D = x.shape
        h = self.n_heads
        if self.d_k == self.d_v:
            qkv = self.qkv(x).view(B, T, 3, h, self.d_k)  # (B, T, 3, h, d_k)
            # Views, no copies; unbinding dim 2 lets backward stack the gradients straight
            # into the (B, T, 3, h, d_k) layout of the projection's output.
            q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))  # 3 x (B, h, T, d_k)
        else:
            parts = self.qkv(x).split(self.blocks(), dim=-1)  # (B, T, h d_k) x 2, (B, T, h d_v)
            q, k, v = (t.view(B, T, h, -1).transpose(1, 2) for t in parts)  # (B, h, T, d_k|d_v)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, h, t, d_k): the past and this position
            mask, is_causal = None, False
        dropout = self.attention_dropout if self.training else 0.0
        y = attend(q, k, v, mask, is_causal, dropout, self.record)  # (B, h, T, d_v)
        return self.out(merge_heads(y))  # (B, T, D)


class CrossAttention(nn.Module):
    """Encoder-decoder attention (3.2.3): queries from the decoder, keys and values from the
    encoder output, projected once per sentence by :meth:`project_kv`."""

    def __init__(self, d_model: int, n_heads: int, d_k: int, d_v: int, attention_dropout: float):
        super().__init__()
        self.n_heads, self.d_k, self.d_v = n_heads, d_k, d_v
        self.attention_dropout = attention_dropout
        self.q = Linear(d_model, n_heads * d_k)  # W^Q
        self.kv = Linear(d_model, n_heads * (d_k + d_v))  # W^K and W^V, stacked
        self.out = Linear(n_heads * d_v, d_model)  # W^O
        self.record: list[Tensor] | None = None  # a list: keep the softmax weights (capture)

    def blocks(self) -> list[int]:
        """Rows of W^K and W^V in the fused ``kv`` weight."""
        return [self.n_heads * self.d_k, self.n_heads * self.d_v]

    def project_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """memory (B, S, D) -> keys (B, h, S, d_k) and values (B, h, S, d_v)."""
        B, S, D = memory.shape
        h = self.n_heads
        if self.d_k == self.d_v:
            kv = self.kv(memory).view(B, S, 2, h, self.d_k)  # (B, S, 2, h, d_k)
            k, v = (t.transpose(1, 2) for t in kv.unbind(2))  # 2 x (B, h, S, d_k), views
        else:
            parts = self.kv(memory).split(self.blocks(), dim=-1)  # (B, S, h d_k), (B, S, h d_v)
            k, v = (t.view(B, S, h, -1).transpose(1, 2) for t in parts)  # (B, h, S, d_k|d_v)
        return k, v

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor], mask: Tensor | None) -> Tensor:
        """x (B, T, D), kv from :meth:`project_kv`, mask (B, 1, 1, S) bool or None -> (B, T, D).

        kv and mask may hold one row per *sentence* while x holds ``b`` consecutive rows per
        sentence (beam search: B = n b, kv (n, h, S, d_k)); the b beams of a sentence then
        attend as b query rows over its one copy of the keys and values."""
        q = split_heads(self.q(x), self.n_heads)  # (B, h, T, d_k)
        dropout = self.attention_dropout if self.training else 0.0
        n = kv[0].size(0)
        B, h, T, dk = q.shape
        if n == B:
            y = attend(q, kv[0], kv[1], mask, False, dropout, self.record)  # (B, h, T, d_v)
            return self.out(merge_heads(y))  # (B, T, D)
        b = B // n
        q = q.view(n, b, h, T, dk).transpose(1, 2).reshape(n, h, b * T, dk)  # (n, h, b T, d_k)
        record = None if self.record is None else []
        y = attend(q, kv[0], kv[1], mask, False, dropout, record)  # (n, h, b T, d_v)
        if record:  # the weights of each beam row, as if kv had been repeated per beam
            w = record[0]  # (n, h, b T, S)
            self.record.append(w.view(n, h, b, T, -1).transpose(1, 2).reshape(B, h, T, -1))
        y = y.view(n, h, b, T, -1).transpose(1, 2).reshape(B, h, T, -1)  # (B, h, T, d_v)
        return self.out(merge_heads(y))  # (B, T, D)


# ----------------------------------------------------------------------------- layers


class FeedForward(nn.Module):
    """Position-wise feed-forward network (3.3): FFN(x) = max(0, x W1 + b1) W2 + b2."""

    def __init__(self, d_model: int, d_ff: int, activation_dropout: float):
        super().__init__()
        self.w1 = Linear(d_model, d_ff)
        self.w2 = Linear(d_ff, d_model)
        self.dropout = Dropout(activation_dropout)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, D) -> (B, T, D)."""
        return self.w2(self.dropout(self.w1(x, relu=True)))  # (B, T, d_ff) inside


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward, each wrapped in dropout + residual + LayerNorm (3.1)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        D = cfg.d_model
        self.self_attn = SelfAttention(D, cfg.n_heads, *cfg.head_dims, cfg.attention_dropout)
        self.ffn = FeedForward(D, cfg.d_ff, cfg.activation_dropout)
        self.norm1 = nn.LayerNorm(D)
        self.norm2 = nn.LayerNorm(D)
        self.drop = Dropout(cfg.dropout)
        self.pre_norm = cfg.norm == "pre"

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """x (B, S, D), mask (B, 1, 1, S) bool or None -> (B, S, D)."""
        if self.pre_norm:
            x = x + self.drop(self.self_attn(self.norm1(x), mask))
            x = x + self.drop(self.ffn(self.norm2(x)))
        else:
            x = self.norm1(x + self.drop(self.self_attn(x, mask)))
            x = self.norm2(x + self.drop(self.ffn(x)))
        return x


class DecoderLayer(nn.Module):
    """Masked self-attention, encoder-decoder attention, feed-forward (3.1), each wrapped in
    dropout + residual + LayerNorm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        D = cfg.d_model
        self.self_attn = SelfAttention(D, cfg.n_heads, *cfg.head_dims, cfg.attention_dropout)
        self.cross_attn = CrossAttention(D, cfg.n_heads, *cfg.head_dims, cfg.attention_dropout)
        self.ffn = FeedForward(D, cfg.d_ff, cfg.activation_dropout)
        self.norm1 = nn.LayerNorm(D)
        self.norm2 = nn.LayerNorm(D)
        self.norm3 = nn.LayerNorm(D)
        self.drop = Dropout(cfg.dropout)
        self.pre_norm = cfg.norm == "pre"

    def forward(
        self,
        x: Tensor,
        memory_kv: tuple[Tensor, Tensor],
        memory_mask: Tensor | None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """x (B, T, D) -> (B, T, D); memory_kv from ``cross_attn.project_kv`` (B, h, S, d_k)
        and (B, h, S, d_v); memory_mask (B, 1, 1, S) bool or None. With ``cache`` (T == 1), one decoding
        step that attends over the cached positions."""

        def self_attn(y: Tensor) -> Tensor:
            return self.self_attn(y, is_causal=cache is None, cache=cache)

        def cross_attn(y: Tensor) -> Tensor:
            return self.cross_attn(y, memory_kv, memory_mask)

        if self.pre_norm:
            x = x + self.drop(self_attn(self.norm1(x)))
            x = x + self.drop(cross_attn(self.norm2(x)))
            x = x + self.drop(self.ffn(self.norm3(x)))
        else:
            x = self.norm1(x + self.drop(self_attn(x)))
            x = self.norm2(x + self.drop(cross_attn(x)))
            x = self.norm3(x + self.drop(self.ffn(x)))
        return x


# ----------------------------------------------------------------------------- model


@dataclass
class EncoderOut:
    """What the decoder needs from the encoder."""

    memory: Tensor  # (B, S, D) encoder output
    src_pad: Tensor  # (B, S) bool, True at padding
    mask: Tensor | None = None  # (B, 1, 1, S) bool key mask (True: may attend); None: no padding

    def reorder(self, index: Tensor) -> EncoderOut:
        """Rows ``index`` (B',) of the batch, in that order (a new EncoderOut)."""
        mask = None if self.mask is None else self.mask.index_select(0, index)
        return EncoderOut(
            self.memory.index_select(0, index), self.src_pad.index_select(0, index), mask
        )


@dataclass
class DecoderState:
    """Incremental-decoding state: per decoder layer, the encoder-side keys/values (computed
    once per sentence) and the self-attention cache of the positions decoded so far.

    The decoder works on B = n ``beams`` rows: ``beams`` consecutive rows per sentence (1
    until a reorder repeats each sentence's rows). The per-sentence tensors (``src_pad``,
    ``mask``, ``cross_kv``) keep one row per sentence (n), shared by its beams; the
    self-attention caches have a row per decoder row (B). ``length`` is the number of target
    positions decoded (the position of the next token).
    """

    src_pad: Tensor  # (n, S) bool, True at padding
    mask: Tensor | None  # (n, 1, 1, S) bool key mask or None
    cross_kv: list[tuple[Tensor, Tensor]]  # per layer: keys (n, h, S, d_k), values (.., d_v)
    self_kv: list[KVCache]  # per layer: self-attention keys/values (B, h, length, d_k|d_v)
    length: int = 0
    beams: int = 1  # decoder rows per sentence

    @property
    def batch_size(self) -> int:
        """Decoder rows B (= sentences x beams)."""
        return self.src_pad.size(0) * self.beams

    def reorder(self, index: Tensor) -> DecoderState:
        """Keep decoder rows ``index`` (B',), in that order; B' may differ from B (beam
        expansion B*beam, removal of finished sentences). In place; returns self.

        When the new rows come in equal runs from one sentence each (beam search's
        expansion and reorders), the sentences' tensors are selected once per run and shared
        (``beams`` = the run length); otherwise each row gets its own copy (``beams`` = 1)."""
        index = index.to(self.src_pad.device)
        sentence = torch.div(index, self.beams, rounding_mode="floor")  # (B',) of each row
        beams = _run_length(sentence)
        per_sentence = sentence[::beams]  # (B' / beams,)
        n = self.src_pad.size(0)
        if per_sentence.size(0) != n or not bool(
            per_sentence.eq(torch.arange(n, device=index.device)).all()
        ):
            self.src_pad = self.src_pad.index_select(0, per_sentence)
            if self.mask is not None:
                self.mask = self.mask.index_select(0, per_sentence)
            self.cross_kv = [
                (k.index_select(0, per_sentence), v.index_select(0, per_sentence))
                for k, v in self.cross_kv
            ]
        self.beams = beams
        for cache in self.self_kv:
            cache.reorder(index)
        return self


def _run_length(sentence: Tensor) -> int:
    """The length L of the runs of equal values in ``sentence`` (B',) if all runs have that
    length (each run then one sentence's beams), else 1."""
    B = sentence.size(0)
    if B == 0:
        return 1
    L = int(sentence.eq(sentence[0]).cumprod(0).sum())  # the first run's length
    if L == 1 or B % L:
        return 1
    runs = sentence.view(B // L, L)
    return L if bool(runs.eq(runs[:, :1]).all()) else 1


@dataclass
class AttentionWeights:
    """The softmax weights that :meth:`Transformer.capture_attention` kept: per layer, one
    tensor per call of that attention module, in call order (float32)."""

    encoder: list[list[Tensor]] = field(default_factory=list)  # self-attention (B, h, S, S)
    decoder: list[list[Tensor]] = field(default_factory=list)  # masked self-attn (B, h, T, t)
    cross: list[list[Tensor]] = field(default_factory=list)  # encoder-decoder (B, h, T, S)


def key_mask(src_pad: Tensor) -> Tensor | None:
    """Boolean attention mask (B, 1, 1, S), True where a key may be attended to, from the
    padding (B, S); None when there is no padding (SDPA then takes its fastest path).

    A row of only padding may attend everywhere instead of nowhere (no NaN from softmax)."""
    if not bool(src_pad.any()):
        return None
    ok = ~src_pad | src_pad.all(dim=1, keepdim=True)  # (B, S)
    return ok[:, None, None, :]


class _Newest(list):
    """A list that keeps only the newest item appended (one call's attention weights)."""

    def append(self, item: Tensor) -> None:
        self.clear()
        super().append(item)


class Transformer(nn.Module):
    """The encoder-decoder Transformer (section 3), pad id 0.

    forward(src (B, S), tgt_in (B, T)) -> logits (B, T, V). ``tgt_in`` is <s> followed by the
    target without its final </s>, padded on the right.
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        if vocab_size < 1:
            raise ConfigError(f"vocabulary size must be >= 1; got {vocab_size}")
        self.cfg = cfg
        self.vocab_size = vocab_size
        D = cfg.d_model
        if cfg.tie_embeddings:
            # One matrix for source embeddings, target embeddings and the pre-softmax
            # projection (3.4).
            self.embed = nn.Embedding(vocab_size, D, padding_idx=PAD)
        else:
            self.src_embed = nn.Embedding(vocab_size, D, padding_idx=PAD)
            self.tgt_embed = nn.Embedding(vocab_size, D, padding_idx=PAD)
            # Read by _logits through output_pack (packed for inference), never called.
            self.out_proj = nn.Linear(D, vocab_size, bias=False)
        self.embed_scale = math.sqrt(D)
        self.output_pack = PackCache()  # the pre-softmax weight packed for inference
        if cfg.positional == "learned":
            # One trained table per side (as fairseq and tensor2tensor), (max_positions, D).
            self.src_positions = nn.Parameter(torch.empty(cfg.max_positions, D))
            self.tgt_positions = nn.Parameter(torch.empty(cfg.max_positions, D))
        else:
            self.register_buffer(
                "positions", sinusoid_table(cfg.max_positions, D), persistent=False
            )
        self.embed_drop = Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        pre = cfg.norm == "pre"
        self.encoder_norm = nn.LayerNorm(D) if pre else None
        self.decoder_norm = nn.LayerNorm(D) if pre else None
        self.reset_parameters()

    # -- weights

    def reset_parameters(self) -> None:
        """Xavier uniform for projections (each fused Q/K/V block separately, as if they
        were separate matrices), zero biases; embeddings and an untied output projection
        N(0, d_model^-0.5) with the padding row zero; LayerNorm 1 and 0; learned position
        tables N(0, d_model^-0.5) (after everything else, so that the other weights are
        drawn exactly as with sinusoids)."""
        std = self.cfg.d_model**-0.5
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
                with torch.no_grad():
                    module.weight[PAD].zero_()
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, SelfAttention | CrossAttention):
                fused = module.qkv if isinstance(module, SelfAttention) else module.kv
                for block in fused.weight.split(module.blocks(), dim=0):  # (h d_k|h d_v, D)
                    nn.init.xavier_uniform_(block)
        if not self.cfg.tie_embeddings:
            nn.init.normal_(self.out_proj.weight, std=std)
        if self.cfg.positional == "learned":
            nn.init.normal_(self.src_positions, std=std)
            nn.init.normal_(self.tgt_positions, std=std)

    def _src_embedding(self) -> nn.Embedding:
        return self.embed if self.cfg.tie_embeddings else self.src_embed

    def _tgt_embedding(self) -> nn.Embedding:
        return self.embed if self.cfg.tie_embeddings else self.tgt_embed

    def _src_positions(self) -> Tensor:
        """(max_positions, D): the sinusoids, or the learned source table."""
        return self.positions if self.cfg.positional == "sinusoidal" else self.src_positions

    def _tgt_positions(self) -> Tensor:
        """(max_positions, D): the sinusoids, or the learned target table."""
        return self.positions if self.cfg.positional == "sinusoidal" else self.tgt_positions

    def output_weight(self) -> Tensor:
        """The pre-softmax projection (V, D); the shared embedding matrix when tied."""
        return self.embed.weight if self.cfg.tie_embeddings else self.out_proj.weight

    # -- pieces

    def _embed(
        self, tokens: Tensor, table: nn.Embedding, positions: Tensor, offset: int = 0
    ) -> Tensor:
        """tokens (B, T) -> Dropout(Embedding * sqrt(D) + PE[offset : offset + T]), (B, T, D);
        ``positions`` (max_positions, D) is PE."""
        T = tokens.size(1)
        if offset + T > self.cfg.max_positions:
            raise AiaynError(
                f"sequence of {offset + T} tokens is longer than "
                f"model.max_positions={self.cfg.max_positions}"
            )
        x = table(tokens) * self.embed_scale + positions[offset : offset + T]  # (B, T, D)
        return self.embed_drop(x)

    def _logits(self, h: Tensor) -> Tensor:
        """Decoder output (..., D) -> logits (..., V)."""
        if self.decoder_norm is not None:
            h = self.decoder_norm(h)
        return packed_linear(h, self.output_weight(), None, self.output_pack)

    # -- training: full sequences

    def encode(self, src: Tensor) -> EncoderOut:
        """src (B, S) token ids -> EncoderOut(memory (B, S, D), src_pad (B, S), mask)."""
        src_pad = src.eq(PAD)  # (B, S)
        mask = key_mask(src_pad)  # (B, 1, 1, S) or None, built once, used by every layer
        x = self._embed(src, self._src_embedding(), self._src_positions())  # (B, S, D)
        for layer in self.encoder:
            x = layer(x, mask)
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        return EncoderOut(x, src_pad, mask)

    def decode(self, tgt_in: Tensor, enc: EncoderOut) -> Tensor:
        """tgt_in (B, T) -> logits (B, T, V), every position at once under a causal mask."""
        x = self._embed(tgt_in, self._tgt_embedding(), self._tgt_positions())  # (B, T, D)
        for layer in self.decoder:
            x = layer(x, layer.cross_attn.project_kv(enc.memory), enc.mask)
        return self._logits(x)  # (B, T, V)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """src (B, S), tgt_in (B, T) -> logits (B, T, V)."""
        return self.decode(tgt_in, self.encode(src))

    # -- inference: one position at a time

    def init_state(self, enc: EncoderOut, capacity: int = 32) -> DecoderState:
        """Decoding state for ``enc``: each layer's encoder keys/values computed once here.

        ``capacity``: positions the self-attention caches hold before they grow (a hint)."""
        mask = enc.mask if enc.mask is not None else key_mask(enc.src_pad)
        cross_kv = [  # contiguous: every step's products would otherwise copy them again
            tuple(t.contiguous() for t in layer.cross_attn.project_kv(enc.memory))
            for layer in self.decoder
        ]
        caches = [KVCache(capacity) for _ in self.decoder]
        return DecoderState(enc.src_pad, mask, cross_kv, caches, length=0)

    def decode_step(self, tokens: Tensor, state: DecoderState) -> Tensor:
        """tokens (B,) at position ``state.length`` -> logits (B, V) for the next position.

        Appends this position's self-attention keys/values to ``state`` (length + 1)."""
        x = self._embed(
            tokens[:, None], self._tgt_embedding(), self._tgt_positions(), offset=state.length
        )  # (B, 1, D)
        for layer, kv, cache in zip(self.decoder, state.cross_kv, state.self_kv, strict=True):
            x = layer(x, kv, state.mask, cache=cache)
        state.length += 1
        return self._logits(x[:, 0])  # (B, V)

    # -- looking inside

    @contextmanager
    def watch_cross_attention(self) -> Iterator[Callable[[], Tensor]]:
        """While open, the last decoder layer's encoder-decoder attention keeps the weights of
        the newest ``decode``/``decode_step`` call (only those); yields a function returning
        them, float32 (R, h, T, S). For the coverage penalty (aiayn.decode.search)."""
        attn = self.decoder[-1].cross_attn
        if attn.record is not None:
            raise RuntimeError("watch_cross_attention() cannot run inside capture_attention()")
        calls = _Newest()
        attn.record = calls
        try:
            yield lambda: calls[-1]
        finally:
            attn.record = None

    @contextmanager
    def capture_attention(self) -> Iterator[AttentionWeights]:
        """Keep every attention's softmax weights while inside the ``with`` block.

        ``with model.capture_attention() as att: model.encode(src)`` leaves the encoder's
        weights in ``att.encoder[layer]``; ``decode``/``decode_step`` add to ``att.decoder``
        (self-attention; a step's row covers the t positions so far) and ``att.cross``.
        Inside, attention runs through :func:`attend_with_weights` (same results up to float
        rounding); outside, and after the block, the fused kernel runs exactly as before.
        """
        modules = (
            [layer.self_attn for layer in self.encoder]
            + [layer.self_attn for layer in self.decoder]
            + [layer.cross_attn for layer in self.decoder]
        )
        if any(m.record is not None for m in modules):
            raise RuntimeError("capture_attention() is already active on this model")
        att = AttentionWeights(
            [[] for _ in self.encoder], [[] for _ in self.decoder], [[] for _ in self.decoder]
        )
        for module, record in zip(modules, att.encoder + att.decoder + att.cross, strict=True):
            module.record = record
        try:
            yield att
        finally:
            for module in modules:
                module.record = None


# ----------------------------------------------------------------------------- counting


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) number of parameters, each shared tensor counted once."""
    params = list(model.parameters())  # deduplicated by nn.Module
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return total, trainable
