"""The parallel writer: millions of demo pairs of a length profile, optionally with noise,
written on all cores, deterministically for a seed (for the benchmarks).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence

from aiayn.data.demo.noise import NOISE_KINDS, NOISE_WEIGHTS, NoiseMaker, allocate, inject
from aiayn.data.demo.profiles import (
    CHUNK,
    PROFILE_MIX,
    PROFILES,
    chunk_pairs,
    unseen_sentence,
    word_count,
)
from aiayn.data.demo.sampler import SentenceGenerator


def pairs_text(pairs: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """Both sides as newline-terminated text; refuses a segment with a line break."""
    en = "".join(f"{e}\n" for e, _ in pairs)
    de = "".join(f"{d}\n" for _, d in pairs)
    for text in (en, de):
        if text.count("\n") != len(pairs) or "\r" in text:
            raise ValueError("a generated segment contains a line break")
    return en, de


def _noisy_chunk(job: tuple) -> tuple[str, str, dict]:
    """Worker: one seeded chunk of :func:`write_parallel`, noise included, as text."""
    seed, profile, index, n, noise, contaminants = job
    pairs = chunk_pairs(seed, profile, index, n)
    counts = dict.fromkeys(NOISE_KINDS, 0)
    if any(noise.values()):
        rng = random.Random(f"aiayn-demo:{seed}:{profile}:{index}:noise")
        gen = SentenceGenerator(PROFILE_MIX[profile][0][0], rng)
        seen_en = {e for e, _ in pairs}
        seen_de = {d for _, d in pairs}

        def fresh() -> tuple[str, str]:
            return unseen_sentence(gen, seen_en, seen_de)

        maker = NoiseMaker(rng, fresh)
        pool = list(contaminants)
        noisy = []
        for kind in NOISE_KINDS:
            for _ in range(noise.get(kind, 0)):
                noisy.append(maker.make(kind, pairs, pool))
                counts[kind] += 1
        pairs = inject(pairs, noisy, rng)
    en, de = pairs_text(pairs)
    stats = {
        "pairs": len(pairs),
        "noise": counts,
        "en_words": sum(map(word_count, en.splitlines())),
    }
    return en, de, stats


def write_parallel(
    en_path: str | os.PathLike,
    de_path: str | os.PathLike,
    n: int,
    seed: int,
    profile: str = "wmt",
    *,
    noise: float = 0.0,
    contamination: Sequence[tuple[str, str]] = (),
    workers: int = 0,
    progress: bool = True,
) -> dict:
    """Write ``n`` clean pairs of ``profile`` (plus ``noise * n`` noisy ones) to two
    line-aligned files, on ``workers`` processes (0: all cores), atomically.

    Without noise the lines equal :func:`generate_pairs` for the same seed, whatever the
    number of workers. Noise kinds are those of :data:`NOISE_KINDS`; contamination needs
    ``contamination`` pairs (e.g. the dev/test sets) to copy. Returns
    ``{"profile", "seed", "pairs", "clean", "noise": {kind: count}, "en_words"}``.
    """
    from aiayn.fsio import atomic_file

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    if n < 1 or not 0.0 <= noise <= 0.5:
        raise ValueError(f"need n >= 1 and 0 <= noise <= 0.5; got n={n}, noise={noise}")
    weights = dict(NOISE_WEIGHTS)
    if not contamination:
        weights["contamination"] = 0.0
    kinds = allocate(round(noise * n), weights, at_least_one=True)
    kinds["contamination"] = min(kinds["contamination"], len(contamination))
    chunks = math.ceil(n / CHUNK)
    jobs, used = [], 0
    for k in range(chunks):
        share = {kind: c * (k + 1) // chunks - c * k // chunks for kind, c in kinds.items()}
        cont = list(contamination[used : used + share["contamination"]])
        used += len(cont)
        jobs.append((seed, profile, k, min(CHUNK, n - k * CHUNK), share, cont))
    workers = workers or os.cpu_count() or 1
    summary = {"profile": profile, "seed": seed, "pairs": 0, "clean": n,
               "noise": dict.fromkeys(NOISE_KINDS, 0), "en_words": 0}  # fmt: skip
    from tqdm import tqdm

    bar = tqdm(total=n, unit="pairs", desc=f"generate {profile}", disable=not progress)
    with atomic_file(en_path) as fe, atomic_file(de_path) as fd:
        if workers > 1 and chunks > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(min(workers, chunks)) as pool:
                results = pool.imap(_noisy_chunk, jobs)
                _drain(results, fe, fd, summary, bar, jobs)
        else:
            _drain(map(_noisy_chunk, jobs), fe, fd, summary, bar, jobs)
    bar.close()
    return summary


def _drain(results, fe, fd, summary: dict, bar, jobs: list) -> None:
    for (en, de, stats), job in zip(results, jobs, strict=True):
        fe.write(en)
        fd.write(de)
        summary["pairs"] += stats["pairs"]
        summary["en_words"] += stats["en_words"]
        for k, v in stats["noise"].items():
            summary["noise"][k] += v
        bar.update(job[3])
