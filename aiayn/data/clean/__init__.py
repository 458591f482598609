"""Stage ``clean``: normalise, filter, deduplicate and decontaminate the training pairs.

Normalisation (train, dev and test alike), per side, in this order:

1. bytes are decoded as UTF-8; invalid bytes become U+FFFD and are counted (lines and
   replacements, per corpus and side);
2. ``strip_html`` (see :func:`strip_html`): HTML/XML tags are removed (block-level and
   line-break tags such as ``<br>``, ``</p>``, ``<li>`` become a space, inline ones such as
   ``<a href=...>``, ``<b>``, ``<span>`` nothing; a ``<`` that does not open a tag, as in
   ``3 < 4`` or ``<3``, stays), then HTML entities ending in ``;`` (named, decimal, hex:
   ``&nbsp;``, ``&amp;``, ``&#8226;``, ``&#x2022;``) are unescaped as :func:`html.unescape`
   does; an unescaped line feed becomes a space. Lines this changes are counted per corpus
   and side (and pairs with either side changed). Unescaped NBSPs, controls and combining
   marks then go through the steps below like any other character;
3. characters that other tools treat as line breaks (``\\r``, ``\\v``, ``\\f``, ``\\x1c-\\x1e``,
   ``\\x85``, U+2028, U+2029) always become a space, so every reader sees the same lines;
4. ``remove_control``: other C0/C1 control characters (tab included) become a space;
   zero-width and invisible format characters (U+200B-U+200F, U+2060-U+2064, U+FEFF,
   soft hyphen, bidi embeddings and isolates, ...) are deleted;
5. ``unicode_nfc``: Unicode NFC;
6. ``collapse_whitespace``: runs of whitespace become one space, ends are stripped.

Dev and test are normalised only, never filtered (line counts are preserved). Training pairs
then go through the filters below, **in this order; a pair dropped by several filters is
counted once, under the first**:

=============  ==========================================================================
empty          a side has no words after normalisation (always on)
length         a side has fewer than ``min_words`` or more than ``max_words`` words
ratio          longer side / shorter side (in words) > ``max_ratio``
copy           ``drop_copies``: the English side equals the German side
lang           ``lang_filter``: a side looks like the wrong language (see :func:`plausible`)
contaminated   ``decontaminate``: either side equals any dev or test segment (either side)
duplicate      ``dedup``: the pair equals an earlier kept pair (corpus order of the
               manifest, then line order), compared by a 64-bit blake2b digest of the
               normalised pair, never by the strings
=============  ==========================================================================

``recipe: paper`` is the paper's own data handling, one setting away: the corpora as
downloaded, no filter beyond the training length limit (``shard.max_tokens_per_side``, like
tensor2tensor's maximum length). It runs the steps above with the values of
:data:`PAPER_RECIPE` whatever the other keys say: no HTML stripping, control-character removal
or NFC, no length, ratio, copy, language, contamination or duplicate filter. Two steps stay:
whitespace is collapsed (tensor2tensor stripped each line's ends; byte-level BPE would learn
tokens for runs of spaces) and pairs with an empty side are dropped (nothing to learn).

Words are whitespace-separated tokens. Since duplicates of a pair share its normalised text,
every copy gets the same per-pair verdict, so the first occurrence is kept only if all
copies would be.

Scale: pairs are read in chunks by the main process and normalised and filtered by
``clean.workers`` processes (0: all cores) with a bounded number of chunks in flight; the
main process keeps only the set of kept-pair digests (about 70 bytes per kept pair) and
writes kept pairs as results arrive, in input order. Output is identical for any number of
workers.

Modules: :mod:`~aiayn.data.clean.normalise` (steps 1-6), :mod:`~aiayn.data.clean.language`
(the ``lang`` heuristic), :mod:`~aiayn.data.clean.filters` (the filters, per chunk, and
dedup), :mod:`~aiayn.data.clean.runner` (chunked reading and the worker pool),
:mod:`~aiayn.data.clean.report` (counts, ``reports/data.{json,md}``); this module reads the
manifest and runs them (:func:`clean`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from aiayn import paths
from aiayn.config import CleanConfig
from aiayn.data.clean.filters import (
    FILTER_HELP,
    FILTERS,
    ChunkResult,
    clean_chunk,
    drop_lines,
    duplicate_indices,
    pair_digest,
)
from aiayn.data.clean.language import plausible
from aiayn.data.clean.normalise import (
    Decoded,
    normalize_block,
    normalize_line,
    normalize_text,
    strip_html,
)
from aiayn.data.clean.report import HTML_KEYS, CorpusStats, build_report, markdown_report
from aiayn.data.clean.runner import Runner, read_chunks, worker_count
from aiayn.errors import ConfigError, DataError
from aiayn.fsio import atomic_dir, atomic_file, require_inputs

__all__ = [
    "CHUNK_PAIRS", "FILTERS", "FILTER_HELP", "HTML_KEYS", "PAPER_RECIPE", "PARALLEL_MIN_PAIRS",
    "ChunkResult", "CorpusStats", "Decoded", "clean", "clean_chunk", "effective_config",
    "normalize_block", "normalize_line", "normalize_text", "pair_digest", "plausible",
    "strip_html",
]  # fmt: skip

# clean.recipe: paper, as values of the other keys (module docstring).
PAPER_RECIPE = {
    "strip_html": False,
    "unicode_nfc": False,
    "remove_control": False,
    "collapse_whitespace": True,
    "min_words": 1,
    "max_words": 2**31 - 1,
    "max_ratio": math.inf,
    "drop_copies": False,
    "lang_filter": False,
    "decontaminate": False,
    "dedup": False,
}
CHUNK_PAIRS = 20_000  # pairs per work item
PARALLEL_MIN_PAIRS = 200_000  # fewer training pairs than this: clean in-process (no pool)

# ----------------------------------------------------------------------------- entry point


def _manifest(raw: Path) -> dict:
    path = raw / "manifest.json"
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a valid JSON manifest ({e})") from None
    for key in ("corpora", "dev", "test"):
        if not isinstance(m, dict) or not isinstance(m.get(key), dict):
            raise DataError(f"{path}: missing or malformed key {key!r}; rerun `dvc repro download`")
    if not m["corpora"]:
        raise DataError(f"{path}: lists no training corpora")
    for name, entry in [*m["corpora"].items(), ("dev", m["dev"]), ("test", m["test"])]:
        if not isinstance(entry.get("lines"), int):
            raise DataError(f"{path}: entry {name!r} has no integer 'lines'")
    return m


def _side_files(raw: Path, key: str, name: str, entry: dict) -> tuple[Path, Path]:
    """The EN and DE files of a manifest entry (paths relative to ``raw``)."""
    out = []
    for lang in paths.LANGS:
        rel = entry.get(lang)
        if rel is None:  # fall back to the standard layout
            rel = {
                "train": lambda lg: paths.raw_train(name, lg, Path()),
                "dev": lambda lg: paths.raw_dev(lg, Path()),
                "test": lambda lg: paths.raw_test(lg, Path()),
            }[key](lang)
        out.append(raw / rel)
    return out[0], out[1]


def _eval_lines(
    raw: Path, key: str, entry: dict, cfg: CleanConfig
) -> tuple[list[str], list[str], dict]:
    en_path, de_path = _side_files(raw, key, key, entry)
    require_inputs(en_path, de_path, stage="download")
    en = normalize_block(en_path.read_bytes(), cfg)
    de = normalize_block(de_path.read_bytes(), cfg)
    if len(en.lines) != len(de.lines):
        raise DataError(
            f"{en_path} has {len(en.lines):,} lines but {de_path} has {len(de.lines):,}"
        )
    if len(en.lines) != entry["lines"]:
        raise DataError(
            f"{en_path} has {len(en.lines):,} lines but {raw / 'manifest.json'} says "
            f"{entry['lines']:,}"
        )
    stats = {
        "lines": len(en.lines),
        "invalid_utf8": {
            "en_lines": en.invalid_lines,
            "en_replacements": en.replacements,
            "de_lines": de.invalid_lines,
            "de_replacements": de.replacements,
        },
        "html": {
            "en_lines": len(en.html_lines),
            "de_lines": len(de.html_lines),
            "pairs": len({*en.html_lines, *de.html_lines}),
        },
    }
    return en.lines, de.lines, stats


def effective_config(cfg: CleanConfig) -> CleanConfig:
    """``cfg`` with :data:`PAPER_RECIPE`'s values under ``recipe: paper``, else as it is."""
    if cfg.recipe == "paper":
        return dataclasses.replace(cfg, **PAPER_RECIPE)
    return cfg


def clean(cfg: CleanConfig, raw: Path, out: Path, report_json: Path, report_md: Path) -> dict:
    """Clean ``raw`` (``data/raw``) into ``out`` (``data/clean``); write both reports.

    Returns the report (also written to ``report_json``). Every output is replaced
    atomically, and none is touched if anything fails.
    """
    from tqdm.auto import tqdm

    cfg = effective_config(cfg)
    if cfg.min_words > cfg.max_words:
        raise ConfigError(
            f"clean.min_words ({cfg.min_words}) must be <= clean.max_words ({cfg.max_words})"
        )
    raw, out = Path(raw), Path(out)
    require_inputs(raw / "manifest.json", stage="download")
    manifest = _manifest(raw)
    train_files = {
        name: _side_files(raw, "train", name, entry) for name, entry in manifest["corpora"].items()
    }
    require_inputs(*[p for pair in train_files.values() for p in pair], stage="download")

    evals = {key: _eval_lines(raw, key, manifest[key], cfg) for key in ("dev", "test")}
    contaminants = frozenset(s.encode() for en, de, _ in evals.values() for s in (*en, *de) if s)
    total_pairs = sum(e["lines"] for e in manifest["corpora"].values())
    workers = worker_count(cfg) if total_pairs >= PARALLEL_MIN_PAIRS else 1

    stats: dict[str, CorpusStats] = {}
    seen: set[int] = set()
    with (
        atomic_dir(out) as tmp,
        atomic_file(report_json) as fj,
        atomic_file(report_md) as fm,
    ):
        for key, (en, de, _) in evals.items():
            for lang, lines in (("en", en), ("de", de)):
                paths.clean_split(key, lang, tmp).write_text(
                    "".join(s + "\n" for s in lines), encoding="utf-8"
                )
        with (
            open(paths.clean_split("train", "en", tmp), "wb") as fe,
            open(paths.clean_split("train", "de", tmp), "wb") as fd,
            Runner(cfg, contaminants, workers) as runner,
            tqdm(total=total_pairs, unit=" pairs", unit_scale=total_pairs > 99_999) as bar,
        ):
            for name, (en_path, de_path) in train_files.items():
                bar.set_description(name)
                st = stats[name] = CorpusStats()
                for r in runner.map(read_chunks(en_path, de_path, CHUNK_PAIRS)):
                    st.add(r)
                    en_out, de_out, kept = r.en, r.de, len(r.digests) // 8
                    if cfg.dedup and kept:
                        dups = duplicate_indices(r.digests, seen)
                        if dups:
                            en_out, de_out = drop_lines(en_out, dups), drop_lines(de_out, dups)
                            st.dropped["duplicate"] += len(dups)
                            kept -= len(dups)
                    st.kept += kept
                    fe.write(en_out)
                    fd.write(de_out)
                    bar.update(r.pairs)
                if st.input != manifest["corpora"][name]["lines"]:
                    raise DataError(
                        f"{en_path} has {st.input:,} lines but {raw / 'manifest.json'} says "
                        f"{manifest['corpora'][name]['lines']:,}"
                    )
        report = build_report(stats, {k: v[2] for k, v in evals.items()})
        fj.write(json.dumps(report, indent=2) + "\n")
        fm.write(markdown_report(report, cfg))
    return report
