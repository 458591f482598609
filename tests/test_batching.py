"""Token-budget batches, ranks, resume, collate and the prefetching loader."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aiayn.batching import (
    Batch,
    BatchLoader,
    TokenBatchSampler,
    _even_out,
    batch_cost,
    collate,
    make_batches,
)
from aiayn.config import ShardConfig, TokenizerConfig
from aiayn.dataset import ShardDataset
from aiayn.errors import AiaynError
from aiayn.vocab import BOS, EOS, PAD

WORDS = "Haus „Hallo“ don't 1.000,50 Bundes-Verfassungs-Gericht über the der und and".split()


def wmt_like_lens(n: int, seed: int = 0, max_len: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(src, tgt) token lengths with EOS: log-normal, correlated, like BPE'd WMT14."""
    rng = np.random.default_rng(seed)
    s = np.clip(np.round(np.exp(rng.normal(3.0, 0.6, n))), 1, max_len - 1).astype(np.int64)
    t = np.clip(np.round(s * np.exp(rng.normal(0.05, 0.2, n))), 1, max_len - 1).astype(np.int64)
    return s + 1, t + 1


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> ShardDataset:
    """A small train split, built through the real tokenize and shard code."""
    from aiayn.shard import build_shards
    from aiayn.tokenizer import train_tokenizer

    d = tmp_path_factory.mktemp("batching")
    rng = random.Random(1)
    clean = d / "clean"
    clean.mkdir()
    for split, n in (("train", 800), ("dev", 20), ("test", 20)):
        for lang in ("en", "de"):
            lines = [" ".join(rng.choices(WORDS, k=rng.randint(1, 12))) for _ in range(n)]
            (clean / f"{split}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tok = d / "tokenizer.json"
    train_tokenizer(TokenizerConfig(300, 2, 0), clean, tok, d / "r1.json")
    build_shards(ShardConfig(64, 0), clean, tok, d / "shards", d / "r2.json")
    return ShardDataset(d / "shards", "train", tokenizer=tok)


# ----------------------------------------------------------------------------- sampler


@settings(max_examples=60, deadline=None)
@given(
    lens=st.lists(st.tuples(st.integers(1, 60), st.integers(1, 60)), min_size=1, max_size=300),
    max_tokens=st.integers(60, 1000),
)
def test_batches_respect_budget_and_cover_every_pair_once(lens, max_tokens):
    src = np.array([a for a, _ in lens])
    tgt = np.array([b for _, b in lens])
    batches = make_batches(src, tgt, max_tokens)
    for b in batches:
        assert batch_cost(src[b], tgt[b]) <= max_tokens
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lens)))
    # greedy: a batch could not have taken the next pair of the order
    for b, nxt in zip(batches, batches[1:], strict=False):
        grown = np.append(b, nxt[0])
        assert batch_cost(src[grown], tgt[grown]) > max_tokens


def test_oversize_pair_is_a_batch_of_its_own():
    src, tgt = np.array([3, 50, 4, 5]), np.array([3, 2, 4, 80])
    s = TokenBatchSampler(src, tgt, 40, seed=0, shuffle=False)
    sizes = sorted(len(b) for b in s.batches)
    assert sizes == [1, 1, 2] and s.n_oversize == 2


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
def test_every_pair_once_per_epoch_across_ranks(world_size):
    src, tgt = wmt_like_lens(3000, seed=world_size)
    samplers = [
        TokenBatchSampler(src, tgt, 700, seed=5, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    n = len(samplers[0])
    assert all(len(s) == n for s in samplers) and n > 0
    assert samplers[0].repeated == 0
    orders = []
    for epoch in (0, 1):
        seen: list[int] = []
        for s in samplers:
            s.set_epoch(epoch)
            mine = list(s)
            assert len(mine) == n
            for b in mine:
                assert batch_cost(src[b], tgt[b]) <= 700
            seen += [i for b in mine for i in b]
        assert sorted(seen) == list(range(len(src)))
        orders.append(seen)
    assert orders[0] != orders[1]  # reshuffled each epoch


def test_shuffle_is_a_function_of_seed_and_epoch():
    src, tgt = wmt_like_lens(2000)

    def order(seed, epoch):
        s = TokenBatchSampler(src, tgt, 500, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert order(1, 3) == order(1, 3)
    assert order(1, 3) != order(2, 3)
    unshuffled = list(TokenBatchSampler(src, tgt, 500, seed=1, shuffle=False))
    m = [max(max(src[b]), max(tgt[b])) for b in unshuffled]
    assert m == sorted(m)  # evaluation order: by length


def test_even_out_halves_largest_then_repeats_when_it_must():
    batches = [np.arange(0, 4), np.arange(4, 5), np.arange(5, 7)]
    out, repeated = _even_out(batches, 2)
    assert repeated == 0 and len(out) == 4
    assert sorted(np.concatenate(out).tolist()) == list(range(7))
    out, repeated = _even_out([np.array([0]), np.array([1]), np.array([2])], 4)
    assert repeated == 1 and len(out) == 4 and out[3].tolist() == [0]


@pytest.mark.parametrize("world_size", [1, 3])
def test_resume_mid_epoch_gives_the_same_remaining_batches(world_size):
    src, tgt = wmt_like_lens(2500)
    for rank in range(world_size):
        a = TokenBatchSampler(src, tgt, 600, seed=9, rank=rank, world_size=world_size)
        a.set_epoch(2)
        it = iter(a)
        for _ in range(7):
            next(it)
        state = a.state_dict()
        rest = list(it)
        b = TokenBatchSampler(src, tgt, 600, seed=9, rank=rank, world_size=world_size)
        b.load_state_dict(state)
        b.set_epoch(2)  # the usual per-epoch call does not reset a resumed position
        assert (b.epoch, b.position) == (2, 7)
        assert list(b) == rest and len(rest) == len(a) - 7


def test_resume_with_other_setup_is_an_error():
    src, tgt = wmt_like_lens(500)
    state = TokenBatchSampler(src, tgt, 600, seed=9).state_dict()
    with pytest.raises(AiaynError, match="saved max_tokens=600, now 700"):
        TokenBatchSampler(src, tgt, 700, seed=9).load_state_dict(state)
    with pytest.raises(AiaynError, match="saved world_size=1, now 2"):
        TokenBatchSampler(src, tgt, 600, seed=9, world_size=2).load_state_dict(state)
    other = wmt_like_lens(500, seed=1)
    with pytest.raises(AiaynError, match="saved layout_sha256="):
        TokenBatchSampler(*other, 600, seed=9).load_state_dict(state)


def test_padding_waste_is_small_on_wmt_like_lengths():
    """Length-sorted batches waste few padded tokens; random batches waste most."""
    src, tgt = wmt_like_lens(40_000)

    def waste(batches):
        real = sum(int(src[b].sum() + tgt[b].sum()) for b in batches)
        padded = sum(len(b) * int(src[b].max() + tgt[b].max()) for b in batches)
        return 1 - real / padded

    assert waste(make_batches(src, tgt, 2048)) < 0.05
    perm = np.random.default_rng(0).permutation(len(src))
    random_batches = [perm[i : i + 40] for i in range(0, len(src), 40)]
    assert waste(random_batches) > 0.3


# ----------------------------------------------------------------------------- collate


def test_collate_shapes_shift_and_padding(ds):
    idx = [5, 0, 17, 3]  # not contiguous: the gather path
    b = collate(ds, idx)
    B = len(idx)
    S, T = int(ds.src_lens[idx].max()), int(ds.tgt_lens[idx].max())
    assert b.src.shape == (B, S) and b.tgt_in.shape == (B, T) == b.tgt_out.shape
    assert b.src.dtype == b.tgt_in.dtype == b.tgt_out.dtype == torch.int64
    for row, i in enumerate(idx):
        src, tgt = ds[i]
        ls, lt = len(src), len(tgt)
        assert b.src[row, :ls].tolist() == src.tolist() and (b.src[row, ls:] == PAD).all()
        assert b.tgt_out[row, :lt].tolist() == tgt.tolist() and (b.tgt_out[row, lt:] == PAD).all()
        assert b.tgt_in[row, :lt].tolist() == [BOS, *tgt[:-1].tolist()]
        assert (b.tgt_in[row, lt:] == PAD).all()
        assert b.tgt_out[row, lt - 1] == EOS and EOS not in b.tgt_in[row].tolist()
    assert b.n_src_tokens == int((b.src != PAD).sum()) == int(ds.src_lens[idx].sum())
    assert b.n_tgt_tokens == int((b.tgt_out != PAD).sum()) == int(ds.tgt_lens[idx].sum())
    assert len(b) == B


def test_collate_contiguous_equals_gather(ds):
    contiguous = collate(ds, list(range(40, 60)))
    gathered = collate(ds, np.array(list(range(40, 60)))[::-1].copy())
    for name in ("src", "tgt_in", "tgt_out"):
        assert torch.equal(getattr(contiguous, name).flip(0), getattr(gathered, name))


def test_batch_to_and_pin_memory(ds):
    b = collate(ds, [1, 2, 3])
    moved = b.to("cpu", non_blocking=True)
    assert isinstance(moved, Batch) and torch.equal(moved.src, b.src)
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        assert b.pin_memory().src.is_pinned()
        assert b.to("cuda").tgt_out.device.type == "cuda"


# ----------------------------------------------------------------------------- loader


def test_loader_runs_epochs_and_resumes_exactly(ds):
    sampler = TokenBatchSampler(ds.src_lens, ds.tgt_lens, 256, seed=3)
    n = len(sampler)
    expected = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        expected += [collate(ds, b) for b in sampler]
    sampler = TokenBatchSampler(ds.src_lens, ds.tgt_lens, 256, seed=3)
    loader = BatchLoader(ds, sampler, prefetch=4)
    it = iter(loader)
    got = [next(it) for _ in range(n + 5)]  # across the epoch boundary
    assert (loader.epoch, loader.position) == (1, 5)  # delivered, not prefetched
    state = loader.state_dict()
    it.close()
    for a, b in zip(got, expected, strict=False):
        assert torch.equal(a.src, b.src) and torch.equal(a.tgt_in, b.tgt_in)

    resumed = BatchLoader(ds, TokenBatchSampler(ds.src_lens, ds.tgt_lens, 256, seed=3))
    resumed.load_state_dict(state)
    rest = list(BatchLoader(ds, resumed.sampler, epochs=2))  # rest of epoch 1, then epoch 2
    assert len(rest) == 2 * n - 5
    for a, b in zip(rest, expected[n + 5 :], strict=True):
        assert torch.equal(a.src, b.src) and torch.equal(a.tgt_out, b.tgt_out)


def test_loader_forwards_worker_errors_and_stops(ds, monkeypatch):
    import aiayn.batching as batching

    sampler = TokenBatchSampler(ds.src_lens, ds.tgt_lens, 256, seed=0)
    calls = {"n": 0}
    real = batching.collate

    def flaky(d, idx):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk went away")
        return real(d, idx)

    monkeypatch.setattr(batching, "collate", flaky)
    it = iter(BatchLoader(ds, sampler, prefetch=2))
    next(it), next(it)
    with pytest.raises(RuntimeError, match="disk went away"):
        next(it)


def test_loader_rejects_mismatched_sampler(ds, tmp_path: Path):
    s = TokenBatchSampler(ds.src_lens[:10], ds.tgt_lens[:10], 256, seed=0)
    with pytest.raises(ValueError, match="sampler has 10 pairs"):
        BatchLoader(ds, s)
