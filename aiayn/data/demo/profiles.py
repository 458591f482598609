"""Length profiles of the demo language: streams of clean sentence pairs shaped like the
demo corpus (single sentences), newstest (news lines) or WMT14 training data (multi-sentence
lines with a long tail), in seeded chunks so that any number of workers writes the same
stream.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from aiayn.data.demo.sampler import SentenceGenerator

PROFILES = ("demo", "newstest", "wmt")
# Flavour mix of each profile; "wmt" follows the WMT14 corpus sizes (1.92M/2.40M/0.20M).
PROFILE_MIX = {
    "demo": (("europarl-v7", "commoncrawl", "news-commentary-v9"), (0.4, 0.8, 1.0)),
    "newstest": (("news",), (1.0,)),
    "wmt": (("europarl-v7", "commoncrawl", "news-commentary-v9"), (0.43, 0.96, 1.0)),
}
# Line lengths (English words) of the multi-sentence profiles: a log-normal target
# (median, sigma, cap) filled with whole sentences until it is reached. "wmt" gives a mean
# of ~23 words, ~0.5% of lines over 100 words and ~1 in 10,000 over the 250-word filter
# limit; "newstest" a mean of ~21 words, at most 100.
_LINE_LENGTH = {"newstest": (13.0, 0.45, 100), "wmt": (12.0, 0.8, 10_000)}
# In "wmt" lines, sentences after the first are drawn from the chunk's earlier sentences
# with probability 1 - 1/_REUSE: the first sentence keeps lines distinct, and the corpus
# generates ~2x faster with the same length and word statistics.
_REUSE = 3
CHUNK = 10_000  # pairs per seeded chunk: the unit of parallel work and of determinism

_DEMO_MIN_WORDS, _DEMO_MAX_WORDS = 3, 30
MAX_RATIO = 1.5  # clean pairs never exceed the cleaner's default length ratio


def word_count(s: str) -> int:
    return len(s.split())


def balanced(en: str, de: str) -> bool:
    a, b = word_count(en), word_count(de)
    return a > 0 and b > 0 and max(a, b) <= MAX_RATIO * min(a, b)


def demo_sentence(gen: SentenceGenerator) -> tuple[str, str]:
    """A single demo-length sentence pair (3-30 words, length ratio <= 1.5)."""
    while True:
        en, de = gen.pair()
        if _DEMO_MIN_WORDS <= word_count(en) <= _DEMO_MAX_WORDS and balanced(en, de) and en != de:
            return en, de


def unseen_sentence(
    gen: SentenceGenerator, seen_en: set[str], seen_de: set[str]
) -> tuple[str, str]:
    """A :func:`demo_sentence` whose sides are in neither set; adds them to the sets."""
    while True:
        en, de = demo_sentence(gen)
        if en not in seen_en and de not in seen_de:
            seen_en.add(en)
            seen_de.add(de)
            return en, de


def chunk_pairs(seed: int, profile: str, index: int, n: int) -> list[tuple[str, str]]:
    """Chunk ``index`` of a profile's clean stream: ``n`` pairs from its own seeded RNG."""
    rng = random.Random(f"aiayn-demo:{seed}:{profile}:{index}")
    names, cum = PROFILE_MIX[profile]
    gens = [SentenceGenerator(name, rng) for name in names]

    def gen() -> SentenceGenerator:
        x = rng.random()
        return next(g for g, c in zip(gens, cum, strict=True) if x < c or c == cum[-1])

    if profile == "demo":
        return [demo_sentence(gen()) for _ in range(n)]
    median, sigma, cap = _LINE_LENGTH[profile]
    mu = math.log(median)
    reuse = profile == "wmt"
    pool: list[tuple[str, str]] = []
    out = []
    for _ in range(n):
        target = min(cap, rng.lognormvariate(mu, sigma))
        g = gen()
        en, de = _sentence(g)
        pool.append((en, de))
        ens, des, words = [en], [de], word_count(en)
        while words < target:
            if reuse and rng.random() >= 1 / _REUSE:
                en, de = pool[int(rng.random() * len(pool))]
            else:
                en, de = _sentence(g)
                pool.append((en, de))
            if words + word_count(en) > cap:
                break
            ens.append(en)
            des.append(de)
            words += word_count(en)
        out.append((" ".join(ens), " ".join(des)))
    return out


def _sentence(gen: SentenceGenerator) -> tuple[str, str]:
    while True:
        en, de = gen.pair()
        if balanced(en, de) and en != de:
            return en, de


def generate_pairs(n: int, seed: int, profile: str = "demo") -> Iterator[tuple[str, str]]:
    """Stream ``n`` clean (English, German) pairs of a length profile, deterministic for
    ``seed``.

    ``demo``: single sentences of 3-30 words (mean ~10) from the three training flavours;
    ``newstest``: news lines like newstest2014 (mean ~21 words, at most 100); ``wmt``:
    lines like WMT14 EN-DE training data (mean ~23 words, a long tail past 100 and a few
    past the 250-word filter limit). Pairs come in seeded chunks of 10,000, so the stream
    equals what :func:`write_parallel` writes with any number of workers.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    for index in range(math.ceil(n / CHUNK)):
        yield from chunk_pairs(seed, profile, index, min(CHUNK, n - index * CHUNK))
