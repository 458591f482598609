"""The filters of the clean stage (the table in :mod:`aiayn.data.clean`): per chunk of
pairs in :func:`clean_chunk` (everything but dedup, in any process), and dedup across the
corpora by pair digest in the main process.
"""

from __future__ import annotations

import hashlib
from array import array
from typing import NamedTuple

from aiayn.config import CleanConfig
from aiayn.data.clean.language import plausible
from aiayn.data.clean.normalise import normalized_bytes

FILTERS = ("empty", "length", "ratio", "copy", "lang", "contaminated", "duplicate")
FILTER_HELP = {
    "empty": "a side is empty after normalisation",
    "length": "a side has fewer than min_words or more than max_words words",
    "ratio": "longer/shorter side in words exceeds max_ratio",
    "copy": "source equals target (untranslated copy)",
    "lang": "a side looks like the wrong language",
    "contaminated": "a side equals a dev or test segment",
    "duplicate": "the pair repeats an earlier kept pair",
}

# ----------------------------------------------------------------------------- per chunk


class ChunkResult(NamedTuple):
    """What a worker returns for one chunk of pairs."""

    en: bytes  # kept English lines, each ending in \n
    de: bytes  # kept German lines
    digests: bytes  # 8-byte blake2b digest of each kept pair, in order
    dropped: tuple[int, ...]  # per filter in FILTERS (duplicate: always 0 here)
    pairs: int  # input pairs
    invalid: tuple[int, int, int, int]  # en lines, en replacements, de lines, de replacements
    html: tuple[int, int, int]  # lines strip_html changed: en, de, pairs with either side


def pair_digest(en: bytes, de: bytes) -> bytes:
    """8-byte blake2b digest of a normalised, UTF-8 encoded pair (no line holds ``\\n``)."""
    return hashlib.blake2b(en + b"\n" + de, digest_size=8).digest()


def clean_chunk(
    en_data: bytes, de_data: bytes, cfg: CleanConfig, contaminants: frozenset[bytes]
) -> ChunkResult:
    """Normalise and filter one chunk of line-aligned pairs (everything but dedup).

    ``contaminants``: the normalised, UTF-8 encoded dev and test segments (both sides).
    """
    en, en_bad, en_repl, en_html = normalized_bytes(en_data, cfg)
    de, de_bad, de_repl, de_html = normalized_bytes(de_data, cfg)
    if len(en) != len(de):  # the reader guarantees this; a bug otherwise
        raise AssertionError(f"chunk with {len(en)} EN and {len(de)} DE lines")
    collapsed = cfg.collapse_whitespace
    dropped = [0] * len(FILTERS)
    keep_en: list[bytes] = []
    keep_de: list[bytes] = []
    digests = bytearray()
    lo, hi, ratio = cfg.min_words, cfg.max_words, cfg.max_ratio
    copies, lang, margin = cfg.drop_copies, cfg.lang_filter, cfg.lang_margin
    decon = cfg.decontaminate and bool(contaminants)
    blake2b = hashlib.blake2b
    for s, t in zip(en, de, strict=True):
        if collapsed:  # words are separated by exactly one space
            ns = s.count(b" ") + 1 if s else 0
            nt = t.count(b" ") + 1 if t else 0
        else:
            ns, nt = len(s.decode().split()), len(t.decode().split())
        if not ns or not nt:
            dropped[0] += 1
        elif ns < lo or nt < lo or ns > hi or nt > hi:
            dropped[1] += 1
        elif max(ns, nt) > ratio * min(ns, nt):
            dropped[2] += 1
        elif copies and s == t:
            dropped[3] += 1
        elif lang and not (
            plausible(s.decode(errors="replace"), "en", margin)
            and plausible(t.decode(errors="replace"), "de", margin)
        ):
            dropped[4] += 1
        elif decon and (s in contaminants or t in contaminants):
            dropped[5] += 1
        else:
            keep_en.append(s)
            keep_de.append(t)
            digests += blake2b(s + b"\n" + t, digest_size=8).digest()  # = pair_digest
    return ChunkResult(
        en=b"".join(x + b"\n" for x in keep_en),
        de=b"".join(x + b"\n" for x in keep_de),
        digests=bytes(digests),
        dropped=tuple(dropped),
        pairs=len(en),
        invalid=(en_bad, en_repl, de_bad, de_repl),
        html=(len(en_html), len(de_html), len({*en_html, *de_html})),
    )


# ----------------------------------------------------------------------------- dedup (main process)


def duplicate_indices(digests: bytes, seen: set[int]) -> list[int]:
    """Indices of pairs whose digest is already in ``seen``; adds the others to ``seen``."""
    hs = array("Q")
    hs.frombytes(digests)
    new = set(hs)
    if len(new) == len(hs) and seen.isdisjoint(new):  # the common case, all in C
        seen |= new
        return []
    dups = []
    add = seen.add
    for i, h in enumerate(hs):
        if h in seen:
            dups.append(i)
        else:
            add(h)
    return dups


def drop_lines(data: bytes, drop: list[int]) -> bytes:
    lines = data.split(b"\n")[:-1]
    gone = set(drop)
    return b"".join(s + b"\n" for i, s in enumerate(lines) if i not in gone)
