"""Decoding speed: aiayn's batched beam search (beam 4) against its uncached self and against
Hugging Face ``transformers`` ``MarianMTModel.generate(num_beams=4)`` and against the same
model exported to CTranslate2 (``aiayn export --to ctranslate2``, float32 and int8
weights; ``translate_batch``, beam 4, as many threads as torch uses), side by side.

Workload: source sentences with the token lengths of newstest2014 (a stand-in: lengths
drawn from a log-normal with median 26 and mean about 29 BPE tokens, clipped to 3..120,
the shape of newstest2014's English side at 37k BPE), 3003 of them in the full run. Models:
the demo preset's dimensions (``aiayn.model.PRESETS["demo"]``: 2+2 layers, d_model 192, d_ff
768, 4 heads) and a 3000-token vocabulary, random weights, fp32, eval mode.

Random weights would stop at random lengths, so every system is made to produce exactly the
same number of tokens: the sentences are sorted by length and cut into batches of at most
``max_tokens`` source tokens (as ``aiayn translate`` does), and in a batch every hypothesis
is exactly ``L = longest source + 4`` tokens long. aiayn: ``</s>`` is suppressed (logit
- 1e4) and ``max_len = L`` forces it after L tokens. Marian: ``min_new_tokens =
max_new_tokens = L``; CTranslate2: ``min_decoding_length = max_decoding_length = L``. Work per sentence is then identical across systems; figures are
sentences/s and output tokens/s (beam 4, hypotheses of the batch x L).

aiayn's float32 CPU products run on oneDNN-packed weights (:mod:`aiayn.packed`, packed once
per weight, as CTranslate2 loads its model); a fourth system, aiayn with packing off (every
product through ``F.linear``, as Marian's), shows what the packing is worth.

Systems alternate batch by batch (the order rotates), so load from other processes hits
all alike. Two phases: first aiayn, its uncached and F.linear selves and Marian (all
PyTorch), then aiayn
again with the two CTranslate2 engines, created only then. CTranslate2 brings its own
OpenMP runtime and thread pool: with both pools on the same cores, every PyTorch system ran
up to 25 % slower, aiayn's many small per-step operations more than Marian's (the Marian
ratio fell from about 1.58 to 1.37 on 2 cores), so each comparison is timed among systems
that share one runtime, or, for CTranslate2, with aiayn timed in that same company.

In the full run each round is an interleaved slice of the batches (long and short ones), so
the 3003 sentences are decoded once; the quick run decodes its few sentences again
in every round, so that rounds differ only by noise. Per-round rates give median/min/max,
the per-round ratios (same work, same time) their spread (``paired``), and each ratio is
total throughput over total throughput on the rounds both systems ran (the slow uncached
one runs in every 4th round of the full run, every 2nd of the quick one; the F.linear one in
every 2nd).

Run alone: ``python -m bench.bench_decode [--quick]`` prints the figures as JSON.
"""

from __future__ import annotations

import math
import statistics
import time

from aiayn.vocab import EOS

EOS_SUPPRESS = 1e4


def _stats(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def source_lengths(n: int, seed: int = 0) -> list[int]:
    """``n`` newstest2014-like source lengths in BPE tokens (before </s>)."""
    import random

    rng = random.Random(seed)
    return [min(120, max(3, round(rng.lognormvariate(math.log(26), 0.45)))) for _ in range(n)]


def make_batches(lengths: list[int], vocab: int, max_tokens: int, seed: int = 0):
    """Sorted, token-bounded batches: list of (src (B, S) with </s>, L output tokens)."""
    import torch

    from aiayn.decode.translator import _token_batches

    g = torch.Generator().manual_seed(seed)
    order = sorted(range(len(lengths)), key=lambda j: lengths[j], reverse=True)
    batches = []
    for b in _token_batches(order, [n + 1 for n in lengths], max_tokens):
        S = lengths[b[0]] + 1
        src = torch.zeros(len(b), S, dtype=torch.long)
        for r, j in enumerate(b):
            src[r, : lengths[j]] = torch.randint(4, vocab, (lengths[j],), generator=g)
            src[r, lengths[j]] = 2  # </s>
        batches.append((src, lengths[b[0]] + 4))
    return batches


class NoEos:
    """aiayn's model with </s> suppressed (so every hypothesis runs to max_len)."""

    def __init__(self, model):
        self.model = model

    def encode(self, src):
        return self.model.encode(src)

    def init_state(self, enc, capacity: int = 32):
        return self.model.init_state(enc, capacity=capacity)

    def decode_step(self, tokens, state):
        logits = self.model.decode_step(tokens, state)
        logits[:, EOS] -= EOS_SUPPRESS
        return logits

    def decode(self, tgt_in, enc):
        logits = self.model.decode(tgt_in, enc)
        logits[..., EOS] -= EOS_SUPPRESS
        return logits


def build_models(vocab: int, preset: str = "demo"):
    """aiayn's Transformer and a MarianMTModel of the same dimensions (``preset`` of
    :data:`aiayn.model.PRESETS`), random weights, eval mode, on the CPU."""
    import torch
    from transformers import MarianMTModel

    from aiayn.model import PRESETS, Transformer
    from bench.bench_train import marian_config

    cfg = PRESETS[preset]
    torch.manual_seed(0)
    aiayn = Transformer(cfg, vocab).eval()
    mc = marian_config(cfg, vocab, forced_eos_token_id=None)
    marian = MarianMTModel._from_config(mc, attn_implementation="sdpa").eval()
    return aiayn, marian


def systems(aiayn, marian, beam: int):
    """name -> callable(src, L) returning the number of output tokens produced."""
    import torch

    from aiayn import packed
    from aiayn.decode.search import beam_search

    wrapped = NoEos(aiayn)

    def run_aiayn(src, L, cache=True):
        max_len = torch.full((src.size(0),), L)
        out = beam_search(wrapped, src, max_len, beam_size=beam, alpha=0.6, cache=cache)
        assert all(len(h[0].tokens) == L for h in out)
        return src.size(0) * L

    def run_unpacked(src, L):
        packed.enabled = False  # every product through F.linear
        try:
            return run_aiayn(src, L)
        finally:
            packed.enabled = True

    def run_marian(src, L):
        with torch.inference_mode():
            out = marian.generate(
                input_ids=src,
                attention_mask=src.ne(0),
                num_beams=beam,
                min_new_tokens=L,
                max_new_tokens=L,
                length_penalty=0.6,
                do_sample=False,
                use_cache=True,
            )
        assert out.size(1) >= L  # the start token + L tokens
        return src.size(0) * L

    return {
        "aiayn": run_aiayn,
        "aiayn-uncached": lambda src, L: run_aiayn(src, L, cache=False),
        "aiayn-unpacked": run_unpacked,
        "marian": run_marian,
    }


def vocab_tokenizer(path, vocab: int):
    """A word-level tokenizer file with aiayn's special ids and ``vocab`` tokens (``w4``, ...),
    for exporting a random-weight model (the export needs a tokenizer)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from aiayn.tokenizer import load_tokenizer
    from aiayn.vocab import SPECIAL_TOKENS, UNK

    words = {t: i for i, t in enumerate(SPECIAL_TOKENS)} | {f"w{i}": i for i in range(4, vocab)}
    tok = Tokenizer(models.WordLevel(words, unk_token=SPECIAL_TOKENS[UNK]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(path))
    return load_tokenizer(path)


def ctranslate2_systems(aiayn, beam: int, threads: int, workdir) -> dict:
    """name -> callable(src, L) for aiayn's model exported to CTranslate2 (``aiayn export``'s
    code path) in float32 and int8, on the CPU with ``threads`` threads; lengths forced to
    exactly L with ``min_decoding_length = max_decoding_length = L``."""
    from pathlib import Path

    import ctranslate2

    from aiayn.export import converter_class, write_transformers

    workdir = Path(workdir)
    tok = vocab_tokenizer(workdir / "tokenizer.json", aiayn.vocab_size)
    write_transformers(aiayn, tok, workdir / "hf")
    converter = converter_class()(str(workdir / "hf"))
    names = [tok.id_to_token(i) for i in range(aiayn.vocab_size)]

    def system(folder, quantization):
        converter.convert(str(folder), quantization=quantization, force=True)
        engine = ctranslate2.Translator(
            str(folder), device="cpu", inter_threads=1, intra_threads=threads
        )

        def run(src, L):
            tokens = [[names[i] for i in row if i] for row in src.tolist()]
            out = engine.translate_batch(
                tokens,
                beam_size=beam,
                length_penalty=0.6,
                min_decoding_length=L,
                max_decoding_length=L,
                max_input_length=0,
            )
            assert all(len(r.hypotheses[0]) == L for r in out)
            return src.size(0) * L

        return run

    return {
        "ctranslate2": system(workdir / "ct2", None),
        "ctranslate2-int8": system(workdir / "ct2-int8", "int8"),
    }


def measure(
    n_sentences: int,
    max_tokens: int,
    rounds: int,
    uncached_every: int,
    beam: int = 4,
    repeat: bool = False,
):
    """Per-round work and time of each system: ``{name: [(sentences, tokens, seconds)]}``
    with ``None`` for rounds a system skipped, and the torch thread count. ``aiayn@ct2`` is
    aiayn timed in the second phase, beside the CTranslate2 engines (module docstring).

    The workload is cut into ``rounds`` interleaved slices of whole batches (each slice
    holds long and short batches), or, with ``repeat``, every round decodes all of it; in
    each round every system decodes the same batches, alternating batch by batch with the
    order rotating. The uncached system (slow) only runs in every ``uncached_every``-th round,
    aiayn without packed weights in every 2nd (at most).
    """
    import tempfile

    import torch

    vocab = 3000
    aiayn, marian = build_models(vocab)
    batches = make_batches(source_lengths(n_sentences), vocab, max_tokens)
    if not repeat:
        rounds = min(rounds, len(batches))
    fns = systems(aiayn, marian, beam)
    every = {"aiayn-uncached": uncached_every, "aiayn-unpacked": min(2, uncached_every)}
    out = alternate(fns, batches, rounds, repeat, every)
    with tempfile.TemporaryDirectory(prefix="bench-ct2-") as workdir:
        fns = {"aiayn@ct2": fns["aiayn"]}
        fns |= ctranslate2_systems(aiayn, beam, torch.get_num_threads(), workdir)
        out |= alternate(fns, batches, rounds, repeat, {})
    return out, torch.get_num_threads()


def alternate(fns: dict, batches: list, rounds: int, repeat: bool, every: dict) -> dict:
    """Time ``fns`` (name -> callable(src, L)) on ``batches``, alternating batch by batch in
    ``rounds`` rounds (:func:`measure`); ``every[name]``: that system runs in every n-th
    round only. ``{name: [(sentences, tokens, seconds) or None per round]}``."""
    small = batches[-1]
    for fn in fns.values():  # warm-up
        fn(small[0][:2], 3)
    names = list(fns)
    out: dict[str, list] = {name: [] for name in names}
    for r in range(rounds):
        chunk = batches if repeat else batches[r::rounds]
        active = [n for n in names if r % every.get(n, 1) == 0]
        elapsed = dict.fromkeys(active, 0.0)
        n_tok = dict.fromkeys(active, 0)
        for i, (src, L) in enumerate(chunk):
            shift = (r + i) % len(active)
            for name in active[shift:] + active[:shift]:
                t = time.perf_counter()
                n_tok[name] += fns[name](src, L)
                elapsed[name] += time.perf_counter() - t
        n_sent = sum(src.size(0) for src, _ in chunk)
        for name in names:
            out[name].append((n_sent, n_tok[name], elapsed[name]) if name in active else None)
    return out


def compare(rounds: dict, name: str, peer: str, unit: int) -> tuple[dict, dict, float, dict]:
    """Per-round rates of ``name`` and ``peer`` over the rounds both ran, the ratio of their
    total throughputs on that same work (``unit`` 0: sentences/s, 1: tokens/s), and the
    per-round ratios (:func:`bench.report.paired_stats`)."""
    from bench.report import paired_stats

    pairs = [(a, b) for a, b in zip(rounds[name], rounds[peer], strict=True) if a and b]
    rate_a = [a[unit] / a[2] for a, _ in pairs]
    rate_b = [b[unit] / b[2] for _, b in pairs]
    total_a = sum(a[unit] for a, _ in pairs) / sum(a[2] for a, _ in pairs)
    total_b = sum(b[unit] for _, b in pairs) / sum(b[2] for _, b in pairs)
    return _stats(rate_a), _stats(rate_b), total_a / total_b, paired_stats(rate_a, rate_b)


def run(quick: bool, tiny: bool = False) -> list[dict]:
    """The figures (see the module docstring); ``tiny``: 4 sentences (the unit test)."""
    if tiny:
        n, max_tokens, rounds, every = 4, 64, 1, 1
    elif quick:  # the same 16 sentences in every round, the uncached search in every 2nd
        n, max_tokens, rounds, every = 16, 256, 5, 2
    else:
        n, max_tokens, rounds, every = 3003, 4096, 8, 4
    res, threads = measure(n, max_tokens, rounds, every, repeat=quick and not tiny)
    where = f"{n} sentences, beam 4, demo dims, fp32, {threads} threads, max_tokens {max_tokens}"
    if quick and not tiny:
        where += f", decoded again in each of {rounds} rounds"
    n_unc = sum(x is not None for x in res["aiayn-uncached"])
    n_unp = sum(x is not None for x in res["aiayn-unpacked"])
    own = {"aiayn-uncached": "aiayn", "aiayn-unpacked": "aiayn", "marian": "aiayn"}
    # (whose aiayn timing each peer meets)
    own |= {"ctranslate2": "aiayn@ct2", "ctranslate2-int8": "aiayn@ct2"}
    figures = []
    for title, peer, peer_name, unit, meaning, note in (
        (
            "beam search, KV cache vs full recompute",
            "aiayn-uncached",
            "aiayn without cache (decode over the whole prefix each step)",
            0,
            "cached / uncached sentences per second on the same batches (goal >= 3)",
            f"; both measured in the {n_unc} round(s) the uncached one ran",
        ),
        (
            "beam search, packed weights vs F.linear",
            "aiayn-unpacked",
            "aiayn with every product through F.linear (aiayn.packed off)",
            0,
            "packed / F.linear sentences per second on the same batches",
            f"; both measured in the {n_unp} round(s) the F.linear one ran",
        ),
        (
            "beam search vs transformers MarianMTModel.generate(num_beams=4)",
            "marian",
            "transformers MarianMTModel.generate",
            0,
            "aiayn / Marian sentences per second on the same batches (goal >= 1.5)",
            "; equal output lengths forced on both",
        ),
        (
            "beam search output tokens/s vs Marian",
            "marian",
            "transformers MarianMTModel.generate",
            1,
            "aiayn / Marian best-hypothesis tokens per second",
            "",
        ),
        (
            "beam search vs CTranslate2 (float32)",
            "ctranslate2",
            "CTranslate2 translate_batch, aiayn export --to ctranslate2",
            0,
            "aiayn / CTranslate2 sentences per second on the same batches and threads",
            "; the same weights exported; equal output lengths forced on both; timed in a "
            "second phase (aiayn with the two engines: their OpenMP pool slows PyTorch)",
        ),
        (
            "beam search vs CTranslate2 int8",
            "ctranslate2-int8",
            "CTranslate2 translate_batch, aiayn export --to ctranslate2 --quantization int8",
            0,
            "aiayn (fp32) / CTranslate2 (int8 weights) sentences per second, same batches",
            "; aiayn in fp32, CTranslate2 with int8 weights; equal output lengths forced",
        ),
    ):
        mine, theirs, ratio, paired = compare(res, own[peer], peer, unit)
        figures.append(
            {
                "name": title,
                "unit": "tokens/s" if unit else "sentences/s",
                "aiayn": mine,
                "peer": theirs,
                "peer_name": peer_name,
                "ratio": ratio,
                "paired": paired,
                "ratio_meaning": meaning,
                "notes": where + note + "; per-round rates, ratio of totals",
                "precision": "fp32",
            }
        )
    return figures


if __name__ == "__main__":
    from bench.report import run_alone

    run_alone(run, __doc__)
