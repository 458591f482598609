"""The demo corpus in the official extracted WMT14 layout (what ``data.source: demo``
writes): training corpora, ``dev/newstest2013`` and the ``test-full/newstest2014`` SGML.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiayn.data.demo.lexicon import lexicon_stats
from aiayn.data.demo.noise import NOISE_KINDS, NOISE_WEIGHTS, NoiseMaker, allocate, inject
from aiayn.data.demo.profiles import demo_sentence, unseen_sentence, word_count
from aiayn.data.demo.sampler import CORPUS_SHARE, SentenceGenerator
from aiayn.data.demo.writer import pairs_text

if TYPE_CHECKING:
    from aiayn.config import DemoConfig

# Paths inside the official extracted archives (see docs/design.md).
TRAIN_FILES = {
    "europarl-v7": "training/europarl-v7.de-en",
    "commoncrawl": "commoncrawl.de-en",
    "news-commentary-v9": "training/news-commentary-v9.de-en",
}
DEV_FILE = "dev/newstest2013"
TEST_SRC = "test-full/newstest2014-deen-src.en.sgm"
TEST_REF = "test-full/newstest2014-deen-ref.de.sgm"
_OUTLETS = ("bbc", "spiegel", "reuters", "zeit", "guardian", "faz", "lemonde", "cnn")


def generate_demo(cfg: DemoConfig, staging: str | os.PathLike, corpora: Sequence[str]) -> dict:
    """Write the demo corpus into ``staging`` in the official extracted WMT14 layout.

    Files: the training corpora in ``corpora`` (``training/europarl-v7.de-en.{de,en}``,
    ``commoncrawl.de-en.{de,en}``, ``training/news-commentary-v9.de-en.{de,en}``),
    ``dev/newstest2013.{en,de}`` and the WMT SGML test set
    ``test-full/newstest2014-deen-{src.en,ref.de}.sgm``. ``cfg.train_pairs`` clean pairs
    are shared over the corpora (40/40/20, renormalised); ``cfg.noise * cfg.train_pairs``
    noisy pairs of the :data:`NOISE_KINDS` come on top (HTML mostly in commoncrawl).
    Clean pairs are unique, never equal to a dev/test segment, within the cleaner's length
    and ratio limits, so every noisy pair is one the cleaner should find.

    Returns the summary: ``{"seed", "train_pairs", "noise_fraction", "files": {path:
    lines}, "corpora": {name: {"lines", "clean", "noise": {kind: n}}}, "noise": {kind: n},
    "dev": {"segments"}, "test": {"segments", "docs"}, "words": {...}, "lexicon": {...}}``.
    """
    from tqdm import tqdm

    from aiayn.data.sgml import write_sgml
    from aiayn.errors import ConfigError
    from aiayn.fsio import atomic_file, atomic_path, ensure_writable_dir

    unknown = [c for c in corpora if c not in TRAIN_FILES]
    if unknown or not corpora or len(set(corpora)) != len(corpora):
        raise ConfigError(
            f"data.corpora must list distinct corpora from {', '.join(TRAIN_FILES)}; "
            f"got {list(corpora)}"
        )
    staging = ensure_writable_dir(staging)
    order = [c for c in TRAIN_FILES if c in corpora]
    seed = cfg.seed
    bar = tqdm(
        total=cfg.dev_pairs + cfg.test_pairs + cfg.train_pairs,
        unit="pairs",
        desc="demo corpus",
        disable=None,
    )

    # Dev and test: news flavour, unique and disjoint on both sides.
    gen = SentenceGenerator("news", random.Random(f"aiayn-demo:{seed}:devtest"))
    seen_en: set[str] = set()
    seen_de: set[str] = set()

    def unique(g: SentenceGenerator) -> tuple[str, str]:
        return unseen_sentence(g, seen_en, seen_de)

    dev = [unique(gen) for _ in range(cfg.dev_pairs)]
    test = [unique(gen) for _ in range(cfg.test_pairs)]
    bar.update(len(dev) + len(test))
    devtest_de = set(seen_de)

    # Clean training pairs: unique English side, no dev/test segment on either side.
    sizes = allocate(cfg.train_pairs, {c: CORPUS_SHARE[c] for c in order}, at_least_one=True)
    clean: dict[str, list[tuple[str, str]]] = {}
    for c in order:
        g = SentenceGenerator(c, random.Random(f"aiayn-demo:{seed}:train:{c}"))
        pairs = clean[c] = []
        while len(pairs) < sizes[c]:
            en, de = demo_sentence(g)
            if en in seen_en or de in devtest_de:
                continue
            seen_en.add(en)
            seen_de.add(de)
            pairs.append((en, de))
            bar.update()
    bar.close()

    # Noise on top, per kind, per corpus.
    kinds = allocate(round(cfg.noise * cfg.train_pairs), NOISE_WEIGHTS, at_least_one=True)
    contaminants = dev + test
    random.Random(f"aiayn-demo:{seed}:contamination").shuffle(contaminants)
    if kinds["contamination"] > len(contaminants):
        kinds["duplicate"] += kinds["contamination"] - len(contaminants)
        kinds["contamination"] = len(contaminants)
    per_corpus: dict[str, dict[str, int]] = {c: {} for c in order}
    for kind, count in kinds.items():
        w = {c: float(sizes[c]) for c in order}
        if kind == "html" and "commoncrawl" in order and len(order) > 1:
            rest = sum(v for c, v in w.items() if c != "commoncrawl")
            w = {c: 0.8 if c == "commoncrawl" else 0.2 * w[c] / rest for c in order}
        for c, k in allocate(count, w).items():
            per_corpus[c][kind] = k

    summary: dict = {
        "seed": seed,
        "train_pairs": cfg.train_pairs,
        "noise_fraction": cfg.noise,
        "files": {},
        "corpora": {},
        "noise": dict.fromkeys(NOISE_KINDS, 0),
    }
    all_clean: list[tuple[str, str]] = []
    for c in order:
        rng = random.Random(f"aiayn-demo:{seed}:noise:{c}")
        g = SentenceGenerator(c, rng)

        def fresh(g: SentenceGenerator = g) -> tuple[str, str]:
            return unique(g)

        maker = NoiseMaker(rng, fresh)
        all_clean += clean[c]
        noisy = []
        for kind in NOISE_KINDS:
            for _ in range(per_corpus[c][kind]):
                source = clean[c] if rng.random() < 0.7 else all_clean
                noisy.append(maker.make(kind, source, contaminants))
        lines = inject(clean[c], noisy, rng)
        en, de = pairs_text(lines)
        for lang, text in (("en", en), ("de", de)):
            rel = f"{TRAIN_FILES[c]}.{lang}"
            with atomic_file(staging / rel) as f:
                f.write(text)
            summary["files"][rel] = len(lines)
        summary["corpora"][c] = {
            "lines": len(lines),
            "clean": len(clean[c]),
            "noise": dict(per_corpus[c]),
        }
        for kind, k in per_corpus[c].items():
            summary["noise"][kind] += k

    en, de = pairs_text(dev)
    for lang, text in (("en", en), ("de", de)):
        with atomic_file(staging / f"{DEV_FILE}.{lang}") as f:
            f.write(text)
        summary["files"][f"{DEV_FILE}.{lang}"] = len(dev)

    rng = random.Random(f"aiayn-demo:{seed}:docs")
    docs, i = [], 0
    while i < len(test):
        size = rng.randint(8, 30)
        docs.append((f"{1000 + len(docs)}-{rng.choice(_OUTLETS)}", test[i : i + size]))
        i += size
    for rel, side, kind in ((TEST_SRC, 0, "src"), (TEST_REF, 1, "ref")):
        with atomic_path(staging / rel) as tmp:
            segments = [(d, [p[side] for p in segs]) for d, segs in docs]
            write_sgml(tmp, segments, setid="newstest2014", kind=kind)
        summary["files"][rel] = len(test)
    summary["dev"] = {"segments": len(dev)}
    summary["test"] = {"segments": len(test), "docs": len(docs)}
    words = [word_count(e) for c in order for e, _ in clean[c]]
    summary["words"] = {
        "clean_en": sum(words),
        "clean_de": sum(word_count(d) for c in order for _, d in clean[c]),
        "mean_en": round(sum(words) / len(words), 2),
        "max_en": max(words),
    }
    summary["lexicon"] = lexicon_stats()
    return summary
