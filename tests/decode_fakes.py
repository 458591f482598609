"""Tiny hand-written models implementing the decoding API of docs/design.md
(:class:`aiayn.decode.protocol.Decodable`), for tests.

``encode(src) -> enc``, ``init_state(enc, capacity) -> state`` (capacity ignored),
``decode_step(tokens, state) -> logits``, ``state.reorder(index)``, ``decode(tgt_in, enc) ->
logits`` and ``enc.reorder(index)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aiayn.vocab import BOS, EOS, PAD, UNK  # noqa: F401  (tests import them from here)


@dataclass
class FakeEnc:
    bias: torch.Tensor  # (B, V) per-sentence logit bias
    src: torch.Tensor  # (B, S)

    def reorder(self, index: torch.Tensor) -> FakeEnc:
        return FakeEnc(self.bias.index_select(0, index), self.src.index_select(0, index))


@dataclass
class FakeState:
    enc: FakeEnc
    length: int = 0
    reorders: int = 0

    def reorder(self, index: torch.Tensor) -> FakeState:
        self.enc = self.enc.reorder(index)
        self.reorders += 1
        return self


class TableModel:
    """logits(next) = table[previous token] + bias(source) + eos_slope * position at </s>.

    ``table`` (V, V) of logits; the source bias is ``src_table[src].sum(1)`` (pad row 0).
    """

    def __init__(self, table: torch.Tensor, src_table: torch.Tensor | None = None, eos_slope=0.0):
        self.table = table
        V = table.size(0)
        self.src_table = src_table if src_table is not None else torch.zeros(V, V)
        self.eos_slope = eos_slope
        self.steps = 0

    @classmethod
    def random(cls, V: int, seed: int, eos_slope: float = 0.3, scale: float = 2.0) -> TableModel:
        g = torch.Generator().manual_seed(seed)
        table = torch.randn(V, V, generator=g) * scale
        src_table = torch.randn(V, V, generator=g) * 0.5
        src_table[PAD] = 0
        return cls(table, src_table, eos_slope)

    def encode(self, src: torch.Tensor) -> FakeEnc:
        return FakeEnc(self.src_table[src].sum(1), src)  # (B, V)

    def init_state(self, enc: FakeEnc, capacity: int = 32) -> FakeState:
        return FakeState(enc)

    def _eos(self, positions: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(*positions.shape, self.table.size(0))
        out[..., EOS] = self.eos_slope * positions
        return out

    def decode_step(self, tokens: torch.Tensor, state: FakeState) -> torch.Tensor:
        self.steps += 1
        pos = torch.full(tokens.shape, float(state.length))
        state.length += 1
        return self.table[tokens] + state.enc.bias + self._eos(pos)  # (B, V)

    def decode(self, tgt_in: torch.Tensor, enc: FakeEnc) -> torch.Tensor:
        T = tgt_in.size(1)
        pos = torch.arange(T, dtype=torch.float32).expand(tgt_in.shape)
        return self.table[tgt_in] + enc.bias[:, None] + self._eos(pos)  # (B, T, V)


class CopyModel:
    """Outputs its source: at position t the logits peak at src[t] (the source ends in </s>)."""

    def __init__(self, V: int):
        self.V = V

    def encode(self, src: torch.Tensor) -> FakeEnc:
        return FakeEnc(torch.zeros(src.size(0), self.V), src)

    def init_state(self, enc: FakeEnc, capacity: int = 32) -> FakeState:
        return FakeState(enc)

    def _logits(self, src: torch.Tensor, pos: int) -> torch.Tensor:
        B, S = src.shape
        target = src[:, pos] if pos < S else torch.full((B,), EOS)
        target = torch.where(target == PAD, torch.full_like(target, EOS), target)
        logits = torch.zeros(B, self.V)
        logits[torch.arange(B), target] = 10.0
        return logits

    def decode_step(self, tokens: torch.Tensor, state: FakeState) -> torch.Tensor:
        out = self._logits(state.enc.src, state.length)
        state.length += 1
        return out

    def decode(self, tgt_in: torch.Tensor, enc: FakeEnc) -> torch.Tensor:
        return torch.stack([self._logits(enc.src, t) for t in range(tgt_in.size(1))], 1)


def assert_same_hypotheses(got: list, want: list, logprob: bool = True) -> None:
    """Two searches' results (per sentence, lists of Hypothesis) agree: the same tokens,
    scores (and log-probabilities) within 1e-5."""
    import pytest

    assert [[h.tokens for h in x] for x in got] == [[h.tokens for h in x] for x in want]
    for x, y in zip(got, want, strict=True):
        for h1, h2 in zip(x, y, strict=True):
            assert h1.score == pytest.approx(h2.score, abs=1e-5)
            if logprob:
                assert h1.logprob == pytest.approx(h2.logprob, abs=1e-5)
