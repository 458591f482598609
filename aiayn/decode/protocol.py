"""What beam search needs of a model: the interface :mod:`aiayn.decode.search` is written
against, implemented by :class:`aiayn.model.Transformer` (and by the tests' hand-written
models, ``tests/decode_fakes.py``).

For typing and documentation only: nothing checks it at run time, so any object with these
methods decodes (duck typing).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from torch import Tensor


class Reorderable(Protocol):
    """Per-row state of a batch: the encoder output or the decoder's key/value cache."""

    def reorder(self, index: Tensor) -> Reorderable:
        """Keep rows ``index`` (R',), in that order (rows may repeat or be dropped); the
        decoder state reorders in place, the encoder output returns a new one."""
        ...


class Decodable(Protocol):
    """A source-to-target model decoded one position at a time (docs/design.md, "Decoding").

    Ids follow :mod:`aiayn.vocab`: sources are padded with ``PAD`` and end in ``EOS``; the
    first decoder input is ``BOS``.
    """

    def encode(self, src: Tensor) -> Reorderable:
        """src (B, S) token ids -> the encoder output of each row."""
        ...

    def init_state(self, enc: Reorderable, capacity: int) -> Reorderable:
        """An empty decoder state (key/value cache) for ``enc``'s rows; ``capacity``: the
        positions to allocate first (a hint: the cache may grow, a model may ignore it)."""
        ...

    def decode_step(self, tokens: Tensor, state: Reorderable) -> Tensor:
        """tokens (R,) at the next position -> logits (R, V); appends to ``state``."""
        ...

    def decode(self, tgt_in: Tensor, enc: Reorderable) -> Tensor:
        """The uncached reference: tgt_in (R, T) -> logits (R, T, V) of every position."""
        ...


class CoverageReadable(Decodable, Protocol):
    """A :class:`Decodable` that can show its encoder-decoder attention, for the GNMT
    coverage penalty (``translate.coverage_penalty > 0``)."""

    def watch_cross_attention(self) -> AbstractContextManager[Callable[[], Tensor]]:
        """While open, keep the newest decoder call's encoder-decoder attention weights of
        the last decoder layer; yields a function returning them, (R, h, T, S)."""
        ...
