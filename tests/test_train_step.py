"""The optimizer step: gradient accumulation is exact, gradients are per-token means of the
whole step, the schedule drives Adam, clipping works."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from aiayn.batching import Batch
from aiayn.config import ModelConfig, TrainConfig
from aiayn.model import Transformer
from aiayn.precision import select_precision
from aiayn.train.loss import label_smoothed_nll_loss
from aiayn.train.schedule import noam_lr
from aiayn.train.trainer import Trainer

V = 40
CFG = ModelConfig(
    encoder_layers=1,
    decoder_layers=1,
    d_model=16,
    d_ff=32,
    n_heads=2,
    dropout=0.0,
    max_positions=32,
)
TCFG = TrainConfig(tokens_per_step=64, max_tokens=32, warmup_steps=10, clip_norm=0.0)


def _pairs(n: int, seed: int) -> list[tuple[list[int], list[int]]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        s, t = torch.randint(2, 9, (2,), generator=g).tolist()
        out.append(
            (
                torch.randint(4, V, (s,), generator=g).tolist() + [2],
                torch.randint(4, V, (t,), generator=g).tolist() + [2],
            )
        )
    return out


def _batch(pairs) -> Batch:
    S = max(len(s) for s, _ in pairs)
    T = max(len(t) for _, t in pairs)
    src = torch.zeros(len(pairs), S, dtype=torch.long)
    tgt_out = torch.zeros(len(pairs), T, dtype=torch.long)
    tgt_in = torch.zeros(len(pairs), T, dtype=torch.long)
    for i, (s, t) in enumerate(pairs):
        src[i, : len(s)] = torch.tensor(s)
        tgt_out[i, : len(t)] = torch.tensor(t)
        tgt_in[i, : len(t)] = torch.tensor([1] + t[:-1])
    return Batch(src, tgt_in, tgt_out, int((src != 0).sum()), int((tgt_out != 0).sum()))


def _trainer(model, cfg=TCFG) -> Trainer:
    return Trainer(model, cfg, CFG.d_model, torch.device("cpu"), select_precision("fp32", "cpu"))


def _grads_after(trainer: Trainer, batches: list[Batch]) -> dict[str, torch.Tensor]:
    _, _, tokens = trainer.accumulate(batches)
    trainer.finish_gradients(tokens, want_norm=False)
    return {n: p.grad.clone() for n, p in trainer.model.named_parameters()}


def test_two_half_batches_equal_one_batch_and_the_mean_loss_gradient():
    torch.manual_seed(0)
    model = Transformer(CFG, V)
    pairs = _pairs(6, seed=1)
    full = _grads_after(_trainer(copy.deepcopy(model)), [_batch(pairs)])
    # Halves are padded differently (each to its own longest sentence).
    halves = _grads_after(_trainer(copy.deepcopy(model)), [_batch(pairs[:3]), _batch(pairs[3:])])
    # Reference: autograd of the smoothed loss averaged over all target tokens.
    ref_model = copy.deepcopy(model)
    b = _batch(pairs)
    sums = label_smoothed_nll_loss(ref_model(b.src, b.tgt_in), b.tgt_out, TCFG.label_smoothing)
    (sums.loss / b.n_tgt_tokens).backward()
    for name, p in ref_model.named_parameters():
        torch.testing.assert_close(full[name], p.grad, rtol=1e-5, atol=1e-7, msg=name)
        torch.testing.assert_close(halves[name], p.grad, rtol=1e-5, atol=1e-7, msg=name)
    # Not trivially equal: the halves really hold fewer tokens each.
    assert _batch(pairs[:3]).n_tgt_tokens < b.n_tgt_tokens


def test_step_uses_the_schedule_and_updates_weights():
    torch.manual_seed(0)
    model = Transformer(CFG, V)
    before = copy.deepcopy(model.state_dict())
    tr = _trainer(model)
    b = _batch(_pairs(4, seed=2))
    for expect_step in (1, 2, 3):
        stats = tr.train_step([b], want_norm=True)
        assert tr.step == expect_step
        assert stats.lr == noam_lr(expect_step, CFG.d_model, TCFG.warmup_steps)
        assert tr.optimizer.param_groups[0]["lr"] == stats.lr
        assert stats.tokens == b.n_tgt_tokens and stats.grad_norm.item() > 0
    assert not torch.equal(before["embed.weight"], model.state_dict()["embed.weight"])
    assert all(p.grad is None for p in model.parameters())  # zeroed for the next step


def test_gradient_clipping_bounds_the_norm():
    torch.manual_seed(0)
    model = Transformer(CFG, V)
    b = _batch(_pairs(4, seed=3))
    free = _trainer(copy.deepcopy(model))
    _, _, tokens = free.accumulate([b])
    norm = free.finish_gradients(tokens, want_norm=True).item()
    clip = norm / 4
    clipped = _trainer(copy.deepcopy(model), dataclasses.replace(TCFG, clip_norm=clip))
    _, _, tokens = clipped.accumulate([b])
    reported = clipped.finish_gradients(tokens, want_norm=False).item()
    assert reported == pytest.approx(norm, rel=1e-5)  # the norm before clipping is logged
    after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in clipped.params])).item()
    assert after == pytest.approx(clip, rel=1e-4)
