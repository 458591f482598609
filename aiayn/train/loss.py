"""Label-smoothed cross entropy (paper section 5.4, "Label Smoothing").

Convention (fairseq's ``label_smoothed_cross_entropy`` and tensor2tensor's): the smoothed
target distribution puts ``1 - eps`` on the reference token and spreads ``eps`` uniformly over
the other ``V - 1`` vocabulary entries (the padding entry included)::

    q(k) = 1 - eps            if k == y
    q(k) = eps / (V - 1)      otherwise

    loss = -sum_k q(k) log p(k) = (1 - eps - eps/(V-1)) * nll + eps/(V-1) * sum_k -log p(k)

This equals ``torch.nn.functional.cross_entropy(label_smoothing=eps * V / (V - 1))`` (PyTorch
spreads its epsilon over all ``V`` entries, the reference included). The loss is the cross
entropy against ``q`` (no KL constant subtracted), so it is never below the entropy of ``q``.

Positions whose target is the padding id contribute nothing. The functions return *sums*; the
trainer divides by the number of target tokens in the whole optimizer step (all
micro-batches, all ranks), so accumulation and data parallelism do not change the result.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from aiayn.vocab import PAD


class LossSums(NamedTuple):
    """Sums over the non-padding target tokens of one batch (0-dim float32 tensors)."""

    loss: torch.Tensor  # label-smoothed cross entropy, summed
    nll: torch.Tensor  # negative log-likelihood of the reference, summed


def label_smoothed_nll_loss(
    logits: torch.Tensor, target: torch.Tensor, eps: float, pad: int = PAD
) -> LossSums:
    """Summed label-smoothed cross entropy and NLL over the non-padding targets.

    Args:
        logits: (B, T, V) or (N, V) unnormalised scores (any float dtype; computed in float32).
        target: (B, T) or (N,) reference ids; ``pad`` marks positions to ignore.
        eps: smoothing mass moved off the reference, spread over the other V - 1 entries.
        pad: padding id.

    Returns:
        :class:`LossSums` of 0-dim float32 tensors (differentiable ``loss``; ``nll`` too).
    """
    V = logits.size(-1)
    lprobs = F.log_softmax(logits.reshape(-1, V).float(), dim=-1)  # (N, V)
    target = target.reshape(-1)  # (N,)
    keep = target != pad  # (N,)
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (N,)
    nll = nll.masked_fill(~keep, 0.0).sum()
    if eps == 0.0:
        return LossSums(nll, nll.detach())
    smooth = -lprobs.sum(-1).masked_fill(~keep, 0.0).sum()  # sum over classes and tokens
    eps_i = eps / (V - 1)
    loss = (1.0 - eps - eps_i) * nll + eps_i * smooth
    return LossSums(loss, nll.detach())
