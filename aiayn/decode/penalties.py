"""The GNMT scoring function (Wu et al. 2016, section 7), used by the paper's beam search.

    s(Y, X) = log P(Y | X) / lp(Y) + cp(X; Y)
    lp(Y)   = ((5 + |Y|) / 6) ** alpha                     length penalty
    cp(X;Y) = beta * sum_i log(min(sum_j p_ij, 1.0))      coverage penalty

|Y| counts the output tokens *including* the final ``</s>`` (not ``<s>``): the hypothesis
"Hallo Welt </s>" has |Y| = 3, and log P(Y | X) includes the probability of ``</s>``. This is
tensor2tensor's convention (the paper's code: at decoding step i the length is i + 1).

p_ij is the attention probability of output token j on source position i: the cross-attention
of the last decoder layer averaged over its heads, summed over the output tokens including
``</s>``; i runs over the real source tokens including the source ``</s>``, not padding. The
paper uses no coverage penalty (beta = 0, the default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

# Attention sums are floored here before the log, so a never-attended source token gives a
# large finite penalty instead of -inf (softmax probabilities are never exactly 0 anyway).
COVERAGE_FLOOR = 1e-6


def length_penalty(length, alpha: float):
    """lp(|Y|) = ((5 + |Y|) / 6) ** alpha for an int, float or tensor ``length``.

    lp(1) = 1 for every alpha; alpha = 0 gives 1 everywhere (plain log-probability).
    """
    return ((5 + length) / 6) ** alpha


def length_penalty_table(max_length: int, alpha: float, device=None) -> Tensor:
    """lp(0 .. max_length) as a float32 tensor (max_length + 1,), non-decreasing in length.

    Scores and early-stopping bounds divide by entries of this one table, so that the bound
    is exact in floating point too (see :mod:`aiayn.decode.search`).
    """
    import torch

    lengths = torch.arange(max_length + 1, dtype=torch.float64, device=device)
    return length_penalty(lengths, alpha).to(torch.float32)


def coverage_penalty(coverage: Tensor, src_real: Tensor, beta: float) -> Tensor:
    """cp = beta * sum_i log(min(coverage_i, 1)) over real source positions.

    coverage (..., S): attention summed over the output tokens; src_real (..., S) bool, True
    at real (non-pad) source positions. Returns (...,), always <= 0.
    """
    capped = coverage.clamp(min=COVERAGE_FLOOR, max=1.0).log()  # (..., S), <= 0
    return beta * (capped * src_real).sum(-1)
