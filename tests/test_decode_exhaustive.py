"""tensor2tensor's beam search rules against an exhaustive search on a real, tiny Transformer.

Every output of a tiny vocabulary up to the maximum length is scored with the full decoder
(``decode`` over the whole prefix, independent of the search's cache and bookkeeping). From
that table, the hypotheses *reachable within the beam* are those a beam of k can ever see:
each step takes the best 2k extensions of the live prefixes, the ones ending in ``</s>``
are reachable finished hypotheses, and the best k others live on. The t2t rules must return
the best of these by length-penalised score (and, with a beam wide enough to hold every
prefix, the best of all outputs); fairseq's rules, which only finish ``</s>`` among the best
k and stop at k finished, miss it on some sentences.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from decode_fakes import BOS, EOS, PAD

from aiayn.decode.penalties import length_penalty_table
from aiayn.decode.search import beam_search

pytestmark = pytest.mark.usefixtures("one_thread")

V = 8  # 4 specials + 4 words: outputs are words of {UNK, 4, 5, 6, 7}
WORDS = [t for t in range(V) if t not in (PAD, BOS, EOS)]
MAX_LEN = 3  # words before </s> (</s> is forced after 3)


def tiny_model(seed: int):
    from aiayn.config import ModelConfig
    from aiayn.model import Transformer

    torch.manual_seed(seed)
    cfg = ModelConfig(
        encoder_layers=1, decoder_layers=2, d_model=16, d_ff=32, n_heads=2, max_positions=16
    )
    model = Transformer(cfg, vocab_size=V).eval()
    with torch.no_grad():
        model.embed.weight.mul_(4.0)  # peaked distributions: hypotheses of every length win
    return model


def next_logprobs(model, src: torch.Tensor) -> dict[tuple[int, ...], torch.Tensor]:
    """{prefix: log-probs (V,) of the next token} for every prefix of up to MAX_LEN words,
    as the search computes them (float32 log-softmax, <pad> and <s> never generated, only
    </s> after MAX_LEN words); full decoder recompute, one batch per prefix length."""
    table = {}
    for n in range(MAX_LEN + 1):
        prefixes = list(itertools.product(WORDS, repeat=n))
        tgt_in = torch.tensor([[BOS, *p] for p in prefixes])  # (P, n + 1)
        with torch.no_grad():
            enc = model.encode(src.expand(len(prefixes), -1))  # (P, S, D)
            lprobs = torch.log_softmax(model.decode(tgt_in, enc)[:, -1].float(), dim=-1)
        lprobs[:, [PAD, BOS]] = float("-inf")
        if n == MAX_LEN:
            eos = lprobs[:, EOS].clone()
            lprobs[:] = float("-inf")
            lprobs[:, EOS] = eos
        table.update(zip(prefixes, lprobs, strict=True))
    return table


def finished_score(prefix, logp: torch.Tensor, lp: torch.Tensor) -> float:
    return (logp / lp[len(prefix) + 1]).item()


def all_outputs(table, lp) -> dict[tuple[int, ...], float]:
    """{output: score} for every output (words, then </s>): the exhaustive search."""
    out = {}
    for prefix in table:
        logp = torch.zeros((), dtype=torch.float32)
        for i, tok in enumerate(prefix):  # summed in the search's order, in float32
            logp = logp + table[prefix[:i]][tok]
        out[prefix] = finished_score(prefix, logp + table[prefix][EOS], lp)
    return out


def reachable(table, lp, k: int) -> dict[tuple[int, ...], float]:
    """{output: score} of the finished hypotheses a beam of k reaches: at each step the
    best 2k extensions of the live prefixes by log-prob; </s> ones finish, the best k of
    the others live on (no early stop: every step up to the forced </s>)."""
    alive = [((), torch.zeros((), dtype=torch.float32))]
    found = {}
    for _ in range(MAX_LEN + 1):
        cands = [(p, s + table[p][tok], tok) for p, s in alive for tok in range(V)]
        cands = [c for c in cands if torch.isfinite(c[1])]
        cands.sort(key=lambda c: -c[1].item())  # stable: ties keep the search's order
        top = cands[: 2 * k]
        for p, s, tok in top:
            if tok == EOS:
                found[p] = finished_score(p, s, lp)
        alive = [(p + (tok,), s) for p, s, tok in top if tok != EOS][:k]
    return found


def best(scored: dict) -> tuple[tuple[int, ...], float]:
    return max(scored.items(), key=lambda kv: kv[1])


SOURCES = [[4, 5, EOS], [6, 7, 5, 4, EOS], [7, EOS], [5, 5, 6, EOS], [4, 6, 7, 7, 5, 6, EOS]]


@pytest.mark.parametrize("alpha", [0.6, 2.0])
def test_t2t_rules_return_the_best_hypothesis_reachable_within_the_beam(alpha):
    lp = length_penalty_table(MAX_LEN + 1, alpha)
    missed_by_fairseq = lengths = 0
    for seed, src_row in itertools.product(range(4), SOURCES):
        model = tiny_model(seed)
        src = torch.tensor([src_row])
        table = next_logprobs(model, src)
        every = all_outputs(table, lp)
        lengths |= 1 << len(best(every)[0])
        for k in (2, 4):
            want_tokens, want_score = best(reachable(table, lp, k))
            got = beam_search(
                model, src, torch.tensor([MAX_LEN]), beam_size=k, alpha=alpha, rules="t2t"
            )[0][0]
            assert tuple(got.tokens) == want_tokens, (seed, src_row, k)
            assert got.score == pytest.approx(want_score, abs=1e-5)
            fairseq = beam_search(
                model, src, torch.tensor([MAX_LEN]), beam_size=k, alpha=alpha, rules="fairseq"
            )[0][0]
            assert fairseq.score <= want_score + 1e-5  # never better than the reachable best
            missed_by_fairseq += fairseq.score < want_score - 1e-5
        # A beam as wide as every prefix (5^3 live at the last step) is the exhaustive search.
        k = len(WORDS) ** MAX_LEN
        assert set(reachable(table, lp, k)) == set(every)
        got = beam_search(model, src, torch.tensor([MAX_LEN]), beam_size=k, alpha=alpha)[0][0]
        assert (tuple(got.tokens), pytest.approx(got.score, abs=1e-5)) == best(every)
    assert missed_by_fairseq > 0  # the two rule sets differ on these sentences
    assert bin(lengths).count("1") >= 2  # the best output is not always of one length
