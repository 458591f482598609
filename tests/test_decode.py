"""Greedy and beam search: known answers, cache == recompute, early stopping, max length."""

from __future__ import annotations

import math

import pytest
import torch
from decode_fakes import BOS, EOS, PAD, TableModel, assert_same_hypotheses

from aiayn.decode.penalties import coverage_penalty, length_penalty, length_penalty_table
from aiayn.decode.search import SearchStats, beam_search, greedy_search, search

A, B, C = 4, 5, 6


def pad_batch(rows: list[list[int]]) -> torch.Tensor:
    S = max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (S - len(r)) for r in rows])


def random_src(g: torch.Generator, n: int, V: int, max_s: int = 7) -> torch.Tensor:
    rows = []
    for _ in range(n):
        s = int(torch.randint(1, max_s, (1,), generator=g))
        rows.append(torch.randint(4, V, (s,), generator=g).tolist() + [EOS])
    return pad_batch(rows)


def as_tuples(results):
    return [[(h.tokens, round(h.score, 5), round(h.logprob, 5)) for h in hyps] for hyps in results]


# ----------------------------------------------------------------------------- penalties


def test_length_penalty_values():
    assert length_penalty(1, 0.6) == 1.0  # lp(1) = 1 for every alpha
    assert length_penalty(7, 0.6) == pytest.approx(2**0.6)  # (5 + 7) / 6 = 2
    assert length_penalty(31, 1.0) == pytest.approx(6.0)
    assert length_penalty(19, 0.6) == pytest.approx(4**0.6)
    assert length_penalty(50, 0.0) == 1.0
    table = length_penalty_table(200, 0.6)
    assert table[7].item() == pytest.approx(2**0.6)
    assert bool((table[1:] >= table[:-1]).all())


def test_coverage_penalty_values():
    cov = torch.tensor([[0.5, 1.5, 1.0, 0.0]])
    real = torch.tensor([[True, True, True, False]])  # the last position is padding
    assert coverage_penalty(cov, real, 0.2).item() == pytest.approx(0.2 * math.log(0.5))
    assert coverage_penalty(torch.ones(1, 3), torch.ones(1, 3, dtype=torch.bool), 1.0) == 0.0


# ----------------------------------------------------------------------------- known answers


def known_model() -> TableModel:
    """BOS -> A .5 | B .4 | C .1;  A -> A .35 | B .3 | C .25 | EOS .1;  B -> EOS .9 ...;
    C -> EOS 1. Greedy follows A forever; beam 2 finds "B </s>" (p = .36)."""
    V = 7
    p = torch.full((V, V), 1e-9)
    p[BOS, [A, B, C]] = torch.tensor([0.5, 0.4, 0.1])
    p[A, [A, B, C, EOS]] = torch.tensor([0.35, 0.3, 0.25, 0.1])
    p[B, [EOS, A, C]] = torch.tensor([0.9, 0.05, 0.05])
    p[C, EOS] = 1.0
    return TableModel(p.log())


def test_beam_finds_the_better_hypothesis_greedy_misses():
    model = known_model()
    src = torch.tensor([[A, EOS]])
    max_len = torch.tensor([3])
    greedy = greedy_search(model, src, max_len, alpha=0.0)[0]
    assert greedy[0].tokens == [A, A, A]  # then </s> forced at the maximum length
    assert greedy[0].logprob == pytest.approx(math.log(0.5 * 0.35**2 * 0.1), abs=1e-5)
    beam = beam_search(model, src, max_len, beam_size=2, alpha=0.0, nbest=2)[0]
    assert beam[0].tokens == [B]
    assert beam[0].logprob == pytest.approx(math.log(0.4 * 0.9), abs=1e-5)
    assert beam[0].score == beam[0].logprob  # alpha 0: no length normalisation
    # Second best: live after step 2 are "A A" (.175) and "A B" (.15); at step 3 "A B </s>"
    # (.135) is the best candidate and finishes.
    assert beam[1].tokens == [A, B]
    assert beam[1].logprob == pytest.approx(math.log(0.5 * 0.3 * 0.9), abs=1e-5)


def test_length_penalty_changes_the_winner():
    # "B </s>" (p = .5) against "A C D </s>" (p = .45): without length normalisation the
    # short one wins; with alpha = 2, lp(2) = (7/6)^2 and lp(4) = (9/6)^2 make the long one win.
    V, D = 8, 7
    p = torch.full((V, V), 1e-9)
    p[BOS, [B, A, C]] = torch.tensor([0.5, 0.45, 0.05])
    p[A, C] = p[C, D] = p[D, EOS] = p[B, EOS] = 1.0
    model = TableModel(p.log())
    src, max_len = torch.tensor([[A, EOS]]), torch.tensor([4])
    short = beam_search(model, src, max_len, beam_size=2, alpha=0.0)[0][0]
    long = beam_search(model, src, max_len, beam_size=2, alpha=2.0)[0][0]
    assert short.tokens == [B]
    assert long.tokens == [A, C, D]
    assert long.score == pytest.approx(math.log(0.45) / (9 / 6) ** 2, abs=1e-5)


# ----------------------------------------------------------------------------- properties


@pytest.mark.parametrize("seed", range(6))
def test_beam_one_equals_greedy(seed):
    # fairseq's rules with one beam are greedy search; t2t's also keep a </s> that ranks
    # second and search on, so they find a hypothesis at least as good. (search() decodes
    # beam 1 greedily under either rules, as tensor2tensor does.)
    g = torch.Generator().manual_seed(seed)
    model = TableModel.random(V=12, seed=seed)
    src = random_src(g, 9, 12)
    max_len = (src.ne(PAD).sum(1) + 3).long()
    better = 0
    for alpha in (0.0, 0.6):
        greedy = greedy_search(model, src, max_len, alpha=alpha)
        beam1 = beam_search(model, src, max_len, beam_size=1, alpha=alpha, rules="fairseq")
        assert as_tuples(greedy) == as_tuples(beam1)
        t2t = beam_search(model, src, max_len, beam_size=1, alpha=alpha, rules="t2t")
        for (g1,), (t1,) in zip(greedy, t2t, strict=True):
            assert t1.score >= g1.score - 1e-6
            better += t1.score > g1.score + 1e-6
        assert as_tuples(search(model, src, max_len, beam_size=1, alpha=alpha)) == as_tuples(greedy)
    assert seed != 3 or better  # seed 3 has sentences where t2t's rules find a better one


@pytest.mark.parametrize("rules", ["t2t", "fairseq"])
def test_early_stopping_never_changes_the_result(rules):
    fired = 0
    for seed in range(40):
        g = torch.Generator().manual_seed(1000 + seed)
        V = int(torch.randint(6, 14, (1,), generator=g))
        k = int(torch.randint(1, 6, (1,), generator=g))
        nbest = int(torch.randint(1, k + 1, (1,), generator=g))
        alpha = [0.0, 0.6, 1.0, 2.0][seed % 4]
        model = TableModel.random(V, seed, eos_slope=float(torch.rand(1, generator=g)))
        src = random_src(g, 5, V)
        max_len = (src.ne(PAD).sum(1) * 1.5 + 2).long()
        with_stop, without = SearchStats(), SearchStats()
        kw = dict(beam_size=k, alpha=alpha, nbest=nbest, rules=rules)
        a = beam_search(model, src, max_len, early_stop=True, stats=with_stop, **kw)
        b = beam_search(model, src, max_len, early_stop=False, stats=without, **kw)
        assert [[(h.tokens, h.score) for h in x] for x in a] == [
            [(h.tokens, h.score) for h in x] for x in b
        ], f"seed {seed}"
        assert with_stop.rows <= without.rows
        fired += with_stop.rows < without.rows
    assert fired >= 5  # the early stop does fire (and save work) on several of these


def test_never_ending_model_stops_at_max_length():
    V = 9
    table = torch.randn(V, V, generator=torch.Generator().manual_seed(3))
    table[:, EOS] = -30.0  # </s> essentially never chosen
    model = TableModel(table)
    src = pad_batch([[4, 5, EOS], [4, 5, 6, 7, 8, EOS], [EOS]])
    max_len = torch.tensor([5, 11, 2])
    for k in (1, 4):
        results = search(model, src, max_len, beam_size=k, nbest=1, alpha=0.6)
        for hyps, L in zip(results, max_len.tolist(), strict=True):
            assert len(hyps) == 1
            assert len(hyps[0].tokens) == L
            assert EOS not in hyps[0].tokens and PAD not in hyps[0].tokens
            assert BOS not in hyps[0].tokens
            assert hyps[0].score == pytest.approx(hyps[0].logprob / length_penalty(L + 1, 0.6))


def test_nbest_sorted_distinct_and_scored():
    model = TableModel.random(V=10, seed=7, eos_slope=0.5)
    g = torch.Generator().manual_seed(7)
    src = random_src(g, 4, 10)
    results = beam_search(model, src, torch.full((4,), 8), beam_size=5, nbest=5, alpha=0.6)
    for hyps in results:
        assert 1 <= len(hyps) <= 5
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == len(hyps)
        for h in hyps:
            lp = length_penalty_table(20, 0.6)[len(h.tokens) + 1].item()
            assert h.score == pytest.approx(h.logprob / lp, rel=1e-6)


def test_finished_sentences_leave_the_batch():
    table = torch.randn(10, 10, generator=torch.Generator().manual_seed(2))
    table[:, EOS] = -30.0  # every sentence runs to its maximum length
    src = pad_batch([[4, EOS], [5, 6, 7, 8, 9, 4, 5, EOS]])
    stats = SearchStats()
    out = beam_search(TableModel(table), src, torch.tensor([2, 12]), beam_size=3, stats=stats)
    # Sentence 0 ends at step 3 (</s> forced), then sentence 1 decodes alone up to step 13.
    assert stats.sentences_per_step == [2, 2, 2] + [1] * 10
    # The first step decodes one row per sentence, every later one a row per beam.
    assert stats.rows == 2 + 3 * sum(stats.sentences_per_step[1:])
    assert [len(h[0].tokens) for h in out] == [2, 12]


def test_batched_equals_one_sentence_at_a_time():
    model = TableModel.random(V=11, seed=5, eos_slope=0.4)
    g = torch.Generator().manual_seed(5)
    src = random_src(g, 8, 11)
    lengths = src.ne(PAD).sum(1)
    max_len = lengths + 4
    batched = beam_search(model, src, max_len, beam_size=4, nbest=2)
    for i in range(src.size(0)):
        alone = beam_search(model, src[i : i + 1, : lengths[i]], max_len[i : i + 1], nbest=2)
        assert as_tuples(alone) == as_tuples(batched[i : i + 1])


# ----------------------------------------------------------------------------- real model


def tiny_transformer(seed: int = 0, dtype: torch.dtype = torch.float64):
    from aiayn.config import ModelConfig
    from aiayn.model import Transformer

    torch.manual_seed(seed)
    cfg = ModelConfig(
        encoder_layers=2, decoder_layers=2, d_model=32, d_ff=64, n_heads=4, max_positions=64
    )
    model = Transformer(cfg, vocab_size=24).to(dtype).eval()
    with torch.no_grad():
        model.embed.weight.mul_(3.0)  # sharper distributions: hypotheses of varied lengths
        model.embed.weight[EOS].mul_(1.5)
    return model


@pytest.mark.parametrize("beam_size,beta", [(1, 0.0), (4, 0.0), (4, 0.3)])
def test_cached_equals_full_recompute(beam_size, beta):
    model = tiny_transformer()
    g = torch.Generator().manual_seed(11)
    src = random_src(g, 6, 24, max_s=9)
    max_len = src.ne(PAD).sum(1) + 3
    kw = dict(beam_size=beam_size, alpha=0.6, beta=beta, nbest=min(beam_size, 2))
    cached = search(model, src, max_len, cache=True, **kw)
    full = search(model, src, max_len, cache=False, **kw)
    assert_same_hypotheses(cached, full)
    lengths = {len(h.tokens) for x in cached for h in x}
    assert len(lengths) > 1  # the test exercises sentences that finish at different steps


def test_coverage_penalty_is_applied():
    # Long sources, short outputs: attention sums stay below 1, so cp < 0.
    model = tiny_transformer()
    g = torch.Generator().manual_seed(11)
    src = random_src(g, 4, 24, max_s=30)
    src = src[src.ne(PAD).sum(1) > 12]
    max_len = torch.full((src.size(0),), 3)
    lp = length_penalty_table(10, 0.6)

    def penalties(beta):
        out = beam_search(model, src, max_len, beam_size=4, alpha=0.6, beta=beta)
        return [
            (h[0].tokens, h[0].score - h[0].logprob / lp[len(h[0].tokens) + 1].item()) for h in out
        ]

    assert all(cp == pytest.approx(0, abs=1e-6) for _, cp in penalties(0.0))
    half, quarter = penalties(0.5), penalties(0.25)
    assert all(cp < -1e-3 for _, cp in half)
    same = [(cp1, cp2) for (t1, cp1), (t2, cp2) in zip(half, quarter, strict=True) if t1 == t2]
    assert same
    for cp1, cp2 in same:  # same hypothesis: cp is linear in beta
        assert cp1 == pytest.approx(2 * cp2, rel=1e-4)


def test_coverage_needs_cross_attention():
    from aiayn.errors import ConfigError

    model = TableModel.random(V=8, seed=0)
    with pytest.raises(ConfigError, match="coverage_penalty"):
        beam_search(model, torch.tensor([[4, EOS]]), torch.tensor([3]), beta=0.2)


@pytest.mark.parametrize("moved", [0, 1, 3, 8])
@pytest.mark.parametrize("rows", [8, 5, 16])
def test_cache_reorder_equals_gathering_the_rows(moved, rows):
    """KVCache.reorder's in-place and 2-D shortcuts give exactly the gathered rows (keys and
    values of different sizes, as with model.d_v != model.d_k)."""
    from aiayn.model import KVCache

    g = torch.Generator().manual_seed(moved)
    cache, ks, vs = KVCache(capacity=4), [], []
    for _ in range(6):  # grows past its first capacity
        k, v = torch.randn(8, 2, 1, 3, generator=g), torch.randn(8, 2, 1, 5, generator=g)  # d_v
        cache.append(k, v)
        ks.append(k)
        vs.append(v)
    index = torch.arange(8).repeat(2)[:rows]
    changed = torch.randperm(rows, generator=g)[:moved]
    index[changed] = torch.randint(0, 8, (changed.numel(),), generator=g)  # copied beams
    cache.reorder(index)
    assert cache.k.shape[:2] == (rows, 2) and cache.k.is_contiguous()
    assert torch.equal(cache.k[:, :, :6], torch.cat(ks, 2)[index])
    assert torch.equal(cache.v[:, :, :6], torch.cat(vs, 2)[index])


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize("beam_size, rules", [(1, "t2t"), (4, "t2t"), (4, "fairseq")])
def test_batched_equals_one_at_a_time_on_the_real_model(beam_size, rules, cache):
    # A padded batch of sources of varied lengths, with varied maximum output lengths, in
    # float32 as the translate stage runs it: exactly the translations of each sentence
    # decoded alone (no padding, a batch of one that never shrinks).
    model = tiny_transformer(seed=4, dtype=torch.float32)
    g = torch.Generator().manual_seed(21)
    src = random_src(g, 10, 24, max_s=14)
    lengths = src.ne(PAD).sum(1)
    assert len(set(lengths.tolist())) >= 5 and bool(src.eq(PAD).any())
    max_len = lengths + torch.randint(1, 6, lengths.shape, generator=g)
    kw = dict(beam_size=beam_size, alpha=0.6, nbest=min(beam_size, 2), rules=rules, cache=cache)
    batched = search(model, src, max_len, **kw)
    for i in range(src.size(0)):
        (alone,) = search(model, src[i : i + 1, : lengths[i]], max_len[i : i + 1], **kw)
        assert [h.tokens for h in alone] == [h.tokens for h in batched[i]], i
        for a, b in zip(alone, batched[i], strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-5)
            assert a.logprob == pytest.approx(b.logprob, abs=1e-5)
    assert len({len(h[0].tokens) for h in batched}) > 2  # sentences finish at different steps


def test_half_precision_decoding_casts_each_weight_once():
    # Under autocast (translate.precision bf16/fp16) each weight is cast to half precision
    # once per search, not at every step: the cast cache works outside inference mode only.
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    cast_ops = {aten._to_copy.default, aten.to.dtype, aten.to.dtype_layout}

    class WeightCasts(TorchDispatchMode):
        def __init__(self, params):
            super().__init__()
            self.ptrs, self.n = {p.data_ptr() for p in params}, 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in cast_ops and args[0].data_ptr() in self.ptrs:
                self.n += 1
            return func(*args, **(kwargs or {}))

    model = tiny_transformer(dtype=torch.float32)
    src = random_src(torch.Generator().manual_seed(2), 3, 24)
    casts = []
    for steps in (4, 12):
        counter = WeightCasts(model.parameters())
        with torch.autocast("cpu", torch.bfloat16), counter:
            beam_search(model, src, torch.full((3,), steps), beam_size=2, early_stop=False)
        casts.append(counter.n)
    assert 0 < casts[0] == casts[1] <= len(list(model.parameters()))
