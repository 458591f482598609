"""Greedy and batched beam search (section 6.1) on the decoder's key/value cache.

Both work on a batch of sentences at once against the model API of ``docs/design.md``:
``encode(src)``, ``init_state(enc)``, ``decode_step(tokens, state)`` and
``state.reorder(index)`` (or ``decode(tgt_in, enc)`` over the whole prefix, the uncached
reference, with ``cache=False``).

Beam search, for each sentence (rows ``i * k .. i * k + k - 1`` of the decoder batch):

- ``k`` live hypotheses ("beams") ranked by their log-probability; at the first step only
  one (``<s>``), so no beam is a duplicate of another.
- Each step extends every beam by every token and takes the best ``2k`` candidates by
  log-probability. The best ``k`` candidates that do not end in ``</s>`` live on (there are
  always ``k`` of them among ``2k``: each beam has only one ``</s>`` extension). Candidates
  ending in ``</s>`` are *finished*, scored with the GNMT function ``log P / lp(|Y|) + cp``
  (:mod:`aiayn.decode.penalties`), under one of two rule sets (``rules``):

  - ``"t2t"``, tensor2tensor's ``beam_search.py``, which the paper decoded with (the
    default): a ``</s>`` candidate from *any* of the ``2k`` joins the finished set, which
    keeps the best ``k`` by score. A sentence stops only when no live hypothesis, even with
    the best length penalty it could still get, can beat the worst finished one kept (and,
    for an n-best list, ``nbest`` are kept), or at its maximum length. The result is the
    best-scoring hypothesis the beam can reach.
  - ``"fairseq"``: only ``</s>`` candidates among the best ``k`` finish, and a sentence
    stops as soon as it has ``k`` finished hypotheses (a longer, better-scoring one may
    still have been on its way), or when no live hypothesis can beat its ``nbest``-th.

- The bound: log-probs only decrease as a hypothesis grows, and lp grows with length
  (alpha >= 0), so the best final score any descendant of a live beam with log-prob
  ``s <= 0`` can reach is ``s / lp(L + 1)``, with ``L + 1`` the longest length it may still
  reach; cp <= 0 adds nothing. The bound is computed from the same float32 table as the
  scores, so stopping on it never changes the result (``early_stop=False`` checks that).
- Done sentences leave the batch: their rows are dropped from the cache (``reorder`` with
  fewer rows), so later steps only compute what is still searching.

Maximum length: ``max_len`` tokens before ``</s>``, per sentence; at step ``max_len + 1``
only ``</s>`` may follow (forced, its log-prob counts), so |Y| <= max_len + 1. ``<pad>``
and ``<s>`` are never generated.

With ``k = 1`` fairseq's rules are greedy search: the one candidate kept is the argmax, and
a finished hypothesis ends the sentence. :func:`greedy_search` is a leaner path with equal
results, and :func:`search` uses it for beam 1 under both rules, as tensor2tensor does.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_args

from aiayn.config import SearchRules, check_nbest
from aiayn.decode.penalties import coverage_penalty, length_penalty_table
from aiayn.decode.protocol import CoverageReadable, Decodable, Reorderable
from aiayn.errors import ConfigError
from aiayn.vocab import BOS, EOS, PAD

if TYPE_CHECKING:
    from torch import Tensor


# Beam search rules (translate.search_rules): tensor2tensor's (the paper's) or fairseq's.
SEARCH_RULES: tuple[str, ...] = get_args(SearchRules)


@dataclass
class Hypothesis:
    """One finished translation of a sentence."""

    tokens: list[int]  # output token ids, without </s>
    score: float  # GNMT score: logprob / lp(len(tokens) + 1) + cp
    logprob: float  # log P(tokens, </s> | source)


@dataclass
class SearchStats:
    """What a search computed (for benchmarks and tests)."""

    steps: int = 0  # decoder calls
    rows: int = 0  # decoder rows computed, summed over steps (hypothesis-tokens)
    sentences_per_step: list[int] = field(default_factory=list)  # active sentences per step


# ----------------------------------------------------------------------------- steppers


INITIAL_CACHE_CAPACITY = 8  # positions; aiayn.model's KVCache doubles it when full


class CachedStepper:
    """One decoding step on the key/value cache: ``decode_step`` + ``state.reorder``."""

    def __init__(self, model: Decodable, enc: Reorderable):
        self.model = model
        # A small first cache: a reorder copies the whole cache buffer, so one sized far
        # beyond the decoded length costs copies of unused positions at every step.
        self.state = model.init_state(enc, capacity=INITIAL_CACHE_CAPACITY)

    def __call__(self, tokens: Tensor) -> Tensor:
        """tokens (R,) -> logits (R, V) of the next position."""
        return self.model.decode_step(tokens, self.state)

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` (R',), in that order."""
        self.state.reorder(index)


class RecomputeStepper:
    """The uncached reference: ``decode`` over the whole prefix at every step."""

    def __init__(self, model: Decodable, enc: Reorderable):
        self.model = model
        self.enc = enc
        self.prefix: Tensor | None = None  # (R, t)

    def __call__(self, tokens: Tensor) -> Tensor:
        """tokens (R,) -> logits (R, V) of the next position."""
        import torch

        col = tokens[:, None]  # (R, 1)
        self.prefix = col if self.prefix is None else torch.cat([self.prefix, col], dim=1)
        return self.model.decode(self.prefix, self.enc)[:, -1]  # (R, V)

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` (R',), in that order."""
        if self.prefix is not None:
            self.prefix = self.prefix.index_select(0, index)
        self.enc = self.enc.reorder(index)


class CrossAttentionProbe:
    """The last decoder layer's encoder-decoder attention (mean over heads) at the newest
    position, for the coverage penalty. ``last``: (R, S) after each step.

    Reads it through the model's ``watch_cross_attention()`` (:class:`CoverageReadable`);
    ``close()`` ends the watch.
    """

    def __init__(self, model: CoverageReadable):
        watch = getattr(model, "watch_cross_attention", None)
        if watch is None:
            raise ConfigError(
                "translate.coverage_penalty > 0 needs a model that shows its encoder-decoder "
                f"attention (watch_cross_attention(), aiayn.model.Transformer); "
                f"{type(model).__name__} has none"
            )
        self._stack = ExitStack()
        self._latest = self._stack.enter_context(watch())

    @property
    def last(self) -> Tensor:
        """(R, S): the newest position's weights, mean over heads."""
        return self._latest()[:, :, -1].mean(1)  # (R, h, T, S) -> (R, S)

    def close(self) -> None:
        self._stack.close()


def _stepper(model: Decodable, enc: Reorderable, cache: bool):
    return CachedStepper(model, enc) if cache else RecomputeStepper(model, enc)


# ----------------------------------------------------------------------------- helpers


def _row_candidates(logits: Tensor, forced_end: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """The ``n`` best next tokens of each row of ``logits`` (R, V): log-probabilities (float32)
    and ids, both (R, n), best first. Never <pad> or <s>; rows ``forced_end`` (R,) bool may
    only produce </s>.

    The log-softmax over the whole vocabulary is one fused pass (about half the time of a
    log-sum-exp alone); <pad> and <s> are masked after it, so they still count in the
    normalisation, as in a model's distribution."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)  # (R, V)
    logp[:, PAD] = float("-inf")
    logp[:, BOS] = float("-inf")
    if bool(forced_end.any()):
        eos = logp[:, EOS].clone()  # (R,)
        logp[forced_end] = float("-inf")
        logp[:, EOS] = eos
    return logp.topk(min(n, logp.size(1)), dim=1)  # (R, n) each


def _no_autograd(device: Any):
    """``torch.inference_mode()``, or ``torch.no_grad()`` under autocast: autocast caches
    its half-precision copies of the weights for the whole context only outside inference
    mode, and would otherwise cast every weight again at every decoding step."""
    import torch

    if torch.is_autocast_enabled(device.type):
        return torch.no_grad()
    return torch.inference_mode()


def _check_inputs(src: Tensor, max_len: Tensor) -> None:
    if src.dim() != 2 or max_len.dim() != 1 or max_len.size(0) != src.size(0):
        raise ValueError(
            f"src must be (B, S) and max_len (B,); got {tuple(src.shape)} and "
            f"{tuple(max_len.shape)}"
        )


# ----------------------------------------------------------------------------- greedy


def greedy_search(
    model: Decodable,
    src: Tensor,
    max_len: Tensor,
    *,
    alpha: float = 0.6,
    beta: float = 0.0,
    cache: bool = True,
    stats: SearchStats | None = None,
) -> list[list[Hypothesis]]:
    """Greedy decoding of a batch: the argmax token at every step.

    src (B, S) token ids padded with <pad>, each row ending in </s>; max_len (B,) long, the
    most output tokens before </s>. Returns one ``[Hypothesis]`` per sentence, in order,
    scored like :func:`beam_search` (equal to it with ``beam_size=1``).
    """
    import torch

    _check_inputs(src, max_len)
    device = src.device
    n = src.size(0)
    results: list[list[Hypothesis]] = [[] for _ in range(n)]
    if n == 0:
        return results
    max_len = max_len.to(device)
    lp = length_penalty_table(int(max_len.max()) + 1, alpha, device)  # (Lmax + 2,)
    probe = CrossAttentionProbe(model) if beta > 0 else None
    try:
        with _no_autograd(src.device):
            enc = model.encode(src)
            step = _stepper(model, enc, cache)
            sent = torch.arange(n, device=device)  # original index of each active row
            tokens = torch.full((n,), BOS, dtype=torch.long, device=device)
            logp = torch.zeros(n, device=device)
            hist = torch.empty((n, 0), dtype=torch.long, device=device)
            src_real = src.ne(PAD)  # (n, S)
            cov = torch.zeros(src.shape, device=device) if probe else None
            for t in range(1, int(max_len.max()) + 2):
                best, tok = _row_candidates(step(tokens), t > max_len[sent], 1)  # (R, 1)
                best, tok = best[:, 0], tok[:, 0]  # (R,)
                if stats is not None:
                    stats.steps += 1
                    stats.rows += tokens.size(0)
                    stats.sentences_per_step.append(tokens.size(0))
                logp = logp + best
                if probe:
                    cov = cov + probe.last
                ended = tok.eq(EOS)
                if bool(ended.any()):
                    rows = ended.nonzero().squeeze(1)
                    score = logp[rows] / lp[t]
                    if probe:
                        score = score + coverage_penalty(cov[rows], src_real[sent[rows]], beta)
                    for r, s, lpv, seq in zip(
                        sent[rows].tolist(),
                        score.tolist(),
                        logp[rows].tolist(),
                        hist[rows].tolist(),
                        strict=True,
                    ):
                        results[r].append(Hypothesis(seq, s, lpv))
                    keep = (~ended).nonzero().squeeze(1)
                    if keep.numel() == 0:
                        break
                    step.reorder(keep)
                    sent, tok, logp, hist = sent[keep], tok[keep], logp[keep], hist[keep]
                    if probe:
                        cov = cov[keep]
                hist = torch.cat([hist, tok[:, None]], dim=1)
                tokens = tok
    finally:
        if probe:
            probe.close()
    return results


# ----------------------------------------------------------------------------- beam


def beam_search(
    model: Decodable,
    src: Tensor,
    max_len: Tensor,
    *,
    beam_size: int = 4,
    alpha: float = 0.6,
    beta: float = 0.0,
    nbest: int = 1,
    rules: str = "t2t",
    early_stop: bool = True,
    cache: bool = True,
    stats: SearchStats | None = None,
) -> list[list[Hypothesis]]:
    """Beam search over a batch of sentences (see the module docstring for the algorithm).

    src (B, S) token ids padded with <pad>, each row ending in </s>; max_len (B,) long, the
    most output tokens before </s>. ``rules``: ``"t2t"`` (tensor2tensor's, the paper's) or
    ``"fairseq"`` (:data:`SEARCH_RULES`). Returns, per sentence in order, its ``nbest`` best
    finished hypotheses, best first (fewer only if fewer could finish).

    ``early_stop=False`` runs every sentence to its maximum length (fairseq rules: or until
    it has ``beam_size`` finished hypotheses): the same best hypothesis, more work;
    ``cache=False`` recomputes the decoder over the whole prefix at every step (same result,
    much more work).
    """
    import torch

    _check_inputs(src, max_len)
    if rules not in SEARCH_RULES:
        raise ConfigError(f"search rules must be one of {', '.join(SEARCH_RULES)}; got {rules!r}")
    check_nbest(nbest, beam_size)
    t2t = rules == "t2t"
    device = src.device
    n, k = src.size(0), beam_size
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    if n == 0:
        return finished
    max_len = max_len.to(device)
    lp = length_penalty_table(int(max_len.max()) + 1, alpha, device)  # (Lmax + 2,)
    probe = CrossAttentionProbe(model) if beta > 0 else None
    try:
        with _no_autograd(src.device):
            enc = model.encode(src)
            # The first step decodes one row per sentence (its beams would all be <s>); the
            # first reorder then gives each sentence its k rows.
            step = _stepper(model, enc, cache)
            sent = torch.arange(n, device=device)  # (n',) original index of each sentence
            lim = max_len.clone()  # (n',)
            bound_lp = lp[lim + 1]  # (n',) the largest lp a live hypothesis can still reach
            alive = torch.full((n, k), float("-inf"), device=device)  # (n', k) log-probs
            alive[:, 0] = 0.0
            tokens = torch.full((n,), BOS, dtype=torch.long, device=device)  # (n' k,) after t 1
            hist = torch.empty((n * k, 0), dtype=torch.long, device=device)  # (n' k, t - 1)
            kept = _Finished(n, k, nbest, t2t, device)
            src_real = src.ne(PAD)  # (n, S)
            cov = torch.zeros((n * k, src.size(1)), device=device) if probe else None
            for t in range(1, int(max_len.max()) + 2):
                na = sent.size(0)
                forced = (t > lim).repeat_interleave(k)  # (n' k,)
                # Each row's best 2k continuations hold the best 2k of the sentence's k beams.
                if t == 1:  # one row per sentence: the same candidates for each of its beams
                    row_top, row_tok = _row_candidates(step(tokens), forced[::k], 2 * k)
                    row_top, row_tok = (x.repeat_interleave(k, 0) for x in (row_top, row_tok))
                else:
                    row_top, row_tok = _row_candidates(step(tokens), forced, 2 * k)  # (n' k, c)
                if stats is not None:
                    stats.steps += 1
                    stats.rows += tokens.size(0)
                    stats.sentences_per_step.append(na)
                if probe:  # (n' k, S) coverage incl. this step
                    cov = cov + (probe.last.repeat_interleave(k, 0) if t == 1 else probe.last)
                c = row_top.size(1)
                cand = (alive.view(-1, 1) + row_top).view(na, k * c)  # (n', k c)
                top, idx = cand.topk(min(2 * k, k * c), dim=1)  # (n', 2k), best first
                beam = torch.div(idx, c, rounding_mode="floor")  # (n', 2k)
                tok = row_tok.view(na, k * c).gather(1, idx)  # (n', 2k)
                is_eos = tok.eq(EOS)

                # Candidates ending in </s> finish: t2t, any of the 2k that enters the best
                # k finished so far; fairseq, those among the best k.
                fin = is_eos & torch.isfinite(top)  # (n', 2k)
                if not t2t:
                    fin[:, k:] = False
                if bool(fin.any()):
                    i, j = fin.nonzero(as_tuple=True)
                    rows = i * k + beam[i, j]  # decoder rows of their parents
                    logp = top[i, j]
                    score = logp / lp[t]
                    if probe:
                        score = score + coverage_penalty(cov[rows], src_real[sent[i]], beta)
                    kept.add(finished, i, sent, score, logp, hist, rows)

                # The best k candidates not ending in </s> live on, in rank order.
                order = torch.argsort(is_eos.to(torch.uint8), dim=1, stable=True)[:, :k]
                alive = top.gather(1, order)  # (n', k)
                new_beam = beam.gather(1, order)  # (n', k)
                new_tok = tok.gather(1, order)  # (n', k)

                done = t > lim  # (n',)
                if not t2t:  # fairseq stops at k finished, t2t never for a count alone
                    done |= kept.count >= k
                if early_stop:
                    done |= kept.cannot_improve(alive[:, 0] / bound_lp)
                if bool(done.all()):
                    break
                keep = (~done).nonzero().squeeze(1)  # (n'',)
                rows = (keep[:, None] * k + new_beam[keep]).view(-1)  # (n'' k,)
                step.reorder(keep.repeat_interleave(k) if t == 1 else rows)  # decoder rows
                hist = torch.cat([hist.index_select(0, rows), new_tok[keep].view(-1, 1)], 1)
                tokens = new_tok[keep].view(-1)
                if probe:
                    cov = cov.index_select(0, rows)
                if keep.size(0) < na:
                    sent, lim, bound_lp = sent[keep], lim[keep], bound_lp[keep]
                    kept.keep(keep)
                alive = alive[keep]
    finally:
        if probe:
            probe.close()
    return [sorted(hyps, key=lambda h: -h.score)[:nbest] for hyps in finished]


class _Finished:
    """Per-sentence bookkeeping of the finished hypotheses for :func:`beam_search`, as
    tensors over the active sentences (n',) so the stopping tests stay on the device.

    t2t rules: at most k kept, the best by score; a candidate enters only if it beats the
    k-th (``admit``, -inf until k are kept); a sentence may stop once its best live
    hypothesis cannot beat the worst one kept (``worst``, -inf while none is).
    fairseq rules: every finished candidate is kept; a sentence stops at k of them
    (``count``), or once no live hypothesis can beat the nbest-th (``nth``).
    """

    def __init__(self, n: int, k: int, nbest: int, t2t: bool, device: Any):
        import torch

        self.k, self.nbest, self.t2t = k, nbest, t2t
        ninf = float("-inf")
        self.count = torch.zeros(n, dtype=torch.long, device=device)  # (n',)
        self.admit = torch.full((n,), ninf, device=device)  # (n',) t2t: score to beat
        self.worst = torch.full((n,), ninf, device=device)  # (n',) t2t: worst kept
        self.nth = torch.full((n,), ninf, device=device)  # (n',) fairseq: nbest-th best

    def add(self, finished, i, sent, score, logp, hist, rows) -> None:
        """Candidates ``i`` (active-sentence index, (m,)) with ``score``/``logp`` (m,) and
        parents ``rows`` of ``hist``, in rank order; appends to ``finished[sent[i]]``."""
        if self.t2t:
            enter = score > self.admit[i]  # (m,)
            i, score, logp, rows = i[enter], score[enter], logp[enter], rows[enter]
        touched = {}
        for ii, r, s, lpv, seq in zip(
            i.tolist(),
            sent[i].tolist(),
            score.tolist(),
            logp.tolist(),
            hist[rows].tolist(),
            strict=True,
        ):
            finished[r].append(Hypothesis(seq, s, lpv))
            touched[ii] = r
        for ii, r in touched.items():
            hyps = finished[r]
            if self.t2t:
                hyps.sort(key=lambda h: -h.score)  # stable: ties keep the earlier one
                del hyps[self.k :]
                self.worst[ii] = hyps[-1].score
                if len(hyps) == self.k:
                    self.admit[ii] = hyps[-1].score
            self.count[ii] = len(hyps)
            if not self.t2t and len(hyps) >= self.nbest:
                self.nth[ii] = sorted((h.score for h in hyps), reverse=True)[self.nbest - 1]

    def cannot_improve(self, best_possible):
        """(n',) bool: no live hypothesis, whose best reachable score is ``best_possible``
        (n',), can change the result any more. t2t: it cannot beat the worst finished one
        kept (and ``nbest`` are kept, so the n-best list is complete)."""
        if self.t2t:
            return (self.count >= self.nbest) & (best_possible < self.worst)
        return (self.count >= self.nbest) & (best_possible <= self.nth)

    def keep(self, index) -> None:
        """Keep the active sentences ``index`` (n'',)."""
        self.count, self.admit = self.count[index], self.admit[index]
        self.worst, self.nth = self.worst[index], self.nth[index]


def search(
    model: Decodable,
    src: Tensor,
    max_len: Tensor,
    *,
    beam_size: int = 4,
    alpha: float = 0.6,
    beta: float = 0.0,
    nbest: int = 1,
    rules: str = "t2t",
    cache: bool = True,
    stats: SearchStats | None = None,
) -> list[list[Hypothesis]]:
    """Greedy search for ``beam_size == 1`` (as tensor2tensor decodes beam 1), beam search
    with ``rules`` otherwise."""
    if beam_size == 1:
        return greedy_search(model, src, max_len, alpha=alpha, beta=beta, cache=cache, stats=stats)
    return beam_search(
        model,
        src,
        max_len,
        beam_size=beam_size,
        alpha=alpha,
        beta=beta,
        nbest=nbest,
        rules=rules,
        cache=cache,
        stats=stats,
    )
