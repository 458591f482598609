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
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import html
import html.entities
import itertools
import json
import math
import os
import re
import unicodedata
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from aiayn import paths
from aiayn.config import CleanConfig
from aiayn.errors import AiaynError, ConfigError, DataError
from aiayn.fsio import atomic_dir, atomic_file, require_inputs

FILTERS = ("empty", "length", "ratio", "copy", "lang", "contaminated", "duplicate")

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
FILTER_HELP = {
    "empty": "a side is empty after normalisation",
    "length": "a side has fewer than min_words or more than max_words words",
    "ratio": "longer/shorter side in words exceeds max_ratio",
    "copy": "source equals target (untranslated copy)",
    "lang": "a side looks like the wrong language",
    "contaminated": "a side equals a dev or test segment",
    "duplicate": "the pair repeats an earlier kept pair",
}
# Counts of lines strip_html changed: per side, and pairs with either side changed.
HTML_KEYS = ("en_lines", "de_lines", "pairs")
CHUNK_PAIRS = 20_000  # pairs per work item
PARALLEL_MIN_PAIRS = 200_000  # fewer training pairs than this: clean in-process (no pool)

# ----------------------------------------------------------------------------- normalisation

_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_CONTROLS = "\x00-\x08\t\x0e-\x1b\x1f\x7f-\x84\x86-\x9f"
_INVISIBLE = (
    "\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
# Every character for which str.isspace() is true, except " " and "\n" (and the breaks).
_SPACES = "\t\x1f\xa0\u1680\u2000-\u200a\u202f\u205f\u3000"
_BREAKS_RE = re.compile(f"[{_BREAKS}]")
_CONTROL_RE = re.compile(f"[{_BREAKS}{_CONTROLS}]")
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")


# An HTML/XML tag: "<", optional "/", a letter-led name, attributes (name, name=value,
# name="value", name='value'), optional "/", ">". Never a bare "<" ("a < b", "<3", "<<").
# Each attribute is an atomic group, so a failed match costs linear time.
_TAG_RE = re.compile(
    r"""<(/?)([A-Za-z][A-Za-z0-9:._-]*)"""
    r"""(?>\s+[^\s"'<>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'<>=`]+))?)*\s*/?>"""
)
# Tags a browser renders as a break between words (a space here); other tags (a, b, span,
# strong, em, font, ...) vanish without one, so "wo<b>rd</b>" stays one word.
_BLOCK_TAGS = frozenset(
    "address article aside blockquote body br dd div dl dt figcaption figure footer form h1 "
    "h2 h3 h4 h5 h6 head header hr html li main nav ol option p pre section table tbody td "
    "tfoot th thead title tr ul".split()
)
# Character references that end in ";": named, decimal, hex.
_ENTITY_RE = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _tag_repl(m: re.Match) -> str:
    return " " if m.group(2).lower() in _BLOCK_TAGS else ""


def _entity_repl(m: re.Match) -> str:
    ref = m.group()
    if ref[1] == "#":
        if len(ref[2:-1].lstrip("xX0")) > 7:  # > U+10FFFF; int() refuses > 4300 digits
            return "\ufffd"
        return html.unescape(ref)  # HTML5 rules: &#0;, surrogates, > U+10FFFF -> U+FFFD, ...
    return html.entities.html5.get(ref[1:], ref)  # unknown names stay as they are


def strip_html(line: str) -> str:
    """Step 2 of the module docstring: remove tags, then unescape entities ending in ``;``.

    Only entities with their ``;`` are unescaped (``&amp;`` yes, ``&amp`` and ``&para=1`` of
    a URL no); an unescaped line feed (``&#10;``) becomes a space, so a line stays a line.
    """
    if "<" in line:
        line = _TAG_RE.sub(_tag_repl, line)
    if "&" in line:
        line = _ENTITY_RE.sub(_entity_repl, line)
        if "\n" in line:
            line = line.replace("\n", " ")
    return line


class Decoded(NamedTuple):
    """Normalised lines of a block of text, and what decoding and normalisation changed."""

    lines: list[str]
    invalid_lines: int  # lines with at least one invalid UTF-8 sequence
    replacements: int  # U+FFFD characters inserted for invalid bytes
    html_lines: tuple[int, ...] = ()  # indices of the lines that strip_html changed


def normalize_line(line: str, cfg: CleanConfig) -> str:
    """Steps 2-6 of the module docstring on one line: the definition of normalisation.

    :func:`normalize_text` computes the same for many lines at once, faster.
    """
    if cfg.strip_html:
        line = strip_html(line)
    return _normalize_chars(line, cfg)


def _normalize_chars(line: str, cfg: CleanConfig) -> str:
    """Steps 3-6 of the module docstring on one line."""
    if cfg.remove_control:
        line = _INVISIBLE_RE.sub("", _CONTROL_RE.sub(" ", line))
    else:
        line = _BREAKS_RE.sub(" ", line)
    if cfg.unicode_nfc:
        line = unicodedata.normalize("NFC", line)
    if cfg.collapse_whitespace:
        line = " ".join(line.split())
    return line


def _ranges(codepoints: list[int]) -> str:
    """A regex character-class body for sorted code points (runs become ranges)."""
    out, k = [], 0
    while k < len(codepoints):
        j = k
        while j + 1 < len(codepoints) and codepoints[j + 1] == codepoints[j] + 1:
            j += 1
        lo, hi = re.escape(chr(codepoints[k])), re.escape(chr(codepoints[j]))
        out.append(lo if j == k else f"{lo}-{hi}")
        k = j + 1
    return "".join(out)


@functools.cache
def _nfc_sensitive() -> tuple[str, frozenset[str]]:
    """The characters that can make a string differ from its NFC form.

    A string without any of them is NFC: combining marks (ccc != 0), characters that compose
    with a preceding one (the second half of a canonical pair, Hangul vowel and trailing
    jamo), and characters that NFC replaces (singletons, composition exclusions).
    Returns (a regex class body of those in the BMP, the set of those beyond it); a class
    with astral ranges would make ``re`` test every range one by one, 40 times slower.
    """
    cps = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for cp in range(0x30000):
        c = chr(cp)
        if unicodedata.combining(c):
            cps.add(cp)
        d = unicodedata.decomposition(c)
        if d and not d.startswith("<"):
            parts = d.split()
            if len(parts) == 2:
                cps.add(int(parts[1], 16))
            if unicodedata.normalize("NFC", c) != c:
                cps.add(cp)
    bmp = sorted(cp for cp in cps if cp < 0x10000)
    return _ranges(bmp), frozenset(chr(cp) for cp in cps if cp >= 0x10000)


_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")


@functools.cache
def _special_re(remove_control: bool, nfc: bool, collapse: bool, html_: bool) -> re.Pattern:
    """Characters (in the BMP) that make a line need :func:`normalize_line`."""
    body = _BREAKS + ("<&" if html_ else "")
    if remove_control:
        body += _CONTROLS + _INVISIBLE
    if nfc:
        body += _nfc_sensitive()[0]
    if collapse:
        body += _SPACES
    return re.compile(f"[{body}]")


def _line_index(lines: list[str], positions: list[int]) -> list[int]:
    """Indices of the lines (of ``"\n".join(lines)``) holding the given text positions."""
    starts = list(itertools.accumulate((len(s) + 1 for s in lines[:-1]), initial=0))
    return sorted({bisect.bisect_right(starts, pos) - 1 for pos in positions})


def _fix_special(text: str, cfg: CleanConfig, astral: bool | None) -> tuple[str, list[int]]:
    """:func:`normalize_line` on the lines of ``text`` that hold a special character.

    One regex scan finds them (control, invisible, NFC-sensitive, non-ASCII space; with
    ``strip_html`` also ``<`` and ``&``); other lines need at most the collapse of ASCII
    spaces, which the callers do per line. Returns (text, indices of the lines that
    :func:`strip_html` changed).
    """
    html_ = cfg.strip_html
    rx = _special_re(cfg.remove_control, cfg.unicode_nfc, cfg.collapse_whitespace, html_)
    hits = [m.start() for m in rx.finditer(text)]
    if cfg.unicode_nfc and (_ASTRAL_RE.search(text) if astral is None else astral):
        sensitive = _nfc_sensitive()[1]
        hits += [m.start() for m in _ASTRAL_RE.finditer(text) if m.group() in sensitive]
    if not hits:
        return text, []
    lines = text.split("\n")
    changed = []
    for k in _line_index(lines, hits):
        line = lines[k]
        if html_:  # = normalize_line, counting what strip_html changes
            stripped = strip_html(line)
            if stripped != line:
                changed.append(k)
            line = stripped
        lines[k] = _normalize_chars(line, cfg)
    return "\n".join(lines), changed


def _collapse_ascii(text: str) -> str:
    """Collapse ASCII spaces per line: all that is left after :func:`_fix_special`."""
    # "  " in s is a fast test.
    return "\n".join(" ".join(s.split()) if "  " in s else s.strip(" ") for s in text.split("\n"))


def normalize_text(text: str, cfg: CleanConfig, *, astral: bool | None = None) -> str:
    """:func:`normalize_line` on every ``\\n``-separated line of ``text``; lines are kept.

    ``astral``: whether ``text`` may hold characters beyond U+FFFF (None: look).
    """
    text = _fix_special(text, cfg, astral)[0]
    return _collapse_ascii(text) if cfg.collapse_whitespace else text


def _has_astral(data: bytes) -> bool:
    """Whether UTF-8 ``data`` may encode a character beyond U+FFFF (lead bytes F0-F4)."""
    return any(b in data for b in (0xF0, 0xF1, 0xF2, 0xF3, 0xF4))


def _decode(data: bytes) -> tuple[str, int, int]:
    """(text, lines with invalid UTF-8, U+FFFD inserted): invalid bytes become U+FFFD."""
    try:
        return data.decode("utf-8"), 0, 0
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    repl = text.count("\ufffd") - data.count("\ufffd".encode())
    # Lines with a U+FFFD are candidates (an input line may hold a valid U+FFFD).
    lines = text.split("\n")
    cand = _line_index(lines, [m.start() for m in re.finditer("\ufffd", text)])
    raw = data.split(b"\n")
    return text, sum(not _is_utf8(raw[k]) for k in cand), repl


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def normalize_block(data: bytes, cfg: CleanConfig) -> Decoded:
    """Decode and normalise ``data``: ``\\n``-terminated lines (the last may lack it)."""
    if not data:
        return Decoded([], 0, 0, ())
    text, invalid, repl = _decode(data)
    text, html_lines = _fix_special(text, cfg, _has_astral(data))
    lines = (_collapse_ascii(text) if cfg.collapse_whitespace else text).split("\n")
    if data.endswith(b"\n"):
        lines.pop()
    return Decoded(lines, invalid, repl, tuple(html_lines))


def _normalized_bytes(data: bytes, cfg: CleanConfig) -> tuple[list[bytes], int, int, list[int]]:
    """Like :func:`normalize_block`, as UTF-8 encoded lines (what the pair loop uses), and
    the indices of the lines that :func:`strip_html` changed."""
    if not data:
        return [], 0, 0, []
    text, invalid, repl = _decode(data)
    text, html_lines = _fix_special(text, cfg, _has_astral(data))
    lines = text.encode().split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    if cfg.collapse_whitespace:  # only ASCII spaces are left to collapse
        lines = [b" ".join(s.split()) if b"  " in s else s.strip(b" ") for s in lines]
    return lines, invalid, repl, html_lines


# ----------------------------------------------------------------------------- language

# Frequent function words that are (nearly) never words of the other language.
_EN_WORDS = frozenset(
    "the of and to is that for it with as on are be this by not at from have has which you "
    "we they their but or were been would there can its these those about into than".split()
)
_DE_WORDS = frozenset(
    "der die das und ist nicht ein eine zu den von mit sich des auf für im dem auch werden "
    "aus er hat dass daß sie nach wird bei einer um sind noch wie einem über einen zum haben "
    "nur oder aber vor zur bis mehr durch wir ich kann diese wurde sehr ihre uns".split()
)
_WORD_RE = re.compile(r"[^\W\d_]+")
_LETTER_RE = re.compile(r"[^\W\d_]")
_UMLAUT_RE = re.compile("[äöüßÄÖÜ]")


def _evidence(text: str) -> tuple[int, int, float]:
    """(English function words, German function words (+1 for umlauts/ß), Latin letter share)."""
    words = _WORD_RE.findall(text.lower())
    en = sum(w in _EN_WORDS for w in words)
    de = sum(w in _DE_WORDS for w in words) + (1 if _UMLAUT_RE.search(text) else 0)
    letters = _LETTER_RE.findall(text)
    latin = sum(c < "\u0250" for c in letters) / len(letters) if letters else 1.0
    return en, de, latin


def plausible(text: str, lang: str, margin: int) -> bool:
    """Whether ``text`` could be ``lang`` ("en" or "de"): a cheap, conservative heuristic.

    Implausible when fewer than half of its letters are Latin, or when function words of
    the other language outnumber its own by at least ``margin``. Text without evidence
    (names, numbers, short phrases) is plausible.
    """
    en, de, latin = _evidence(text)
    if latin < 0.5:
        return False
    own, other = (en, de) if lang == "en" else (de, en)
    return other - own < margin


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
    en, en_bad, en_repl, en_html = _normalized_bytes(en_data, cfg)
    de, de_bad, de_repl, de_html = _normalized_bytes(de_data, cfg)
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


_WORKER: tuple[CleanConfig, frozenset[bytes]] | None = None


def _init_worker(cfg: CleanConfig, contaminants_file: str) -> None:
    """Worker start: the dev/test segments come from a file (one per line), not through
    the start-up pipe, which a worker that fails to start would leave blocked."""
    global _WORKER
    with open(contaminants_file, "rb") as f:
        _WORKER = (cfg, frozenset(f.read().split(b"\n")) - {b""})


def _work(en_data: bytes, de_data: bytes) -> ChunkResult:
    assert _WORKER is not None
    return clean_chunk(en_data, de_data, *_WORKER)


# ----------------------------------------------------------------------------- reading


def _read_chunks(en_path: Path, de_path: Path, n: int) -> Iterator[tuple[bytes, bytes]]:
    """Line-aligned chunks of at most ``n`` lines per side; DataError if the counts differ."""
    done = 0
    with open(en_path, "rb") as fe, open(de_path, "rb") as fd:
        while True:
            a, b = list(islice(fe, n)), list(islice(fd, n))
            if len(a) != len(b):
                n_en = done + len(a) + sum(1 for _ in fe)
                n_de = done + len(b) + sum(1 for _ in fd)
                raise DataError(f"{en_path} has {n_en:,} lines but {de_path} has {n_de:,}")
            if not a:
                return
            done += len(a)
            yield _join(a), _join(b)


def _join(lines: list[bytes]) -> bytes:
    data = b"".join(lines)
    return data if data.endswith(b"\n") else data + b"\n"


def _workers(cfg: CleanConfig) -> int:
    if cfg.workers:
        return cfg.workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _Runner:
    """Runs :func:`clean_chunk` in-process or on worker processes, results in input order.

    Workers are started with ``spawn`` (no fork of a threaded parent; the same on every
    OS; and they are children of this process, so ``getrusage(RUSAGE_CHILDREN)`` sees
    them). A worker that dies (killed, out of memory, failed start) is an error, not a hang.
    """

    def __init__(self, cfg: CleanConfig, contaminants: frozenset[bytes], workers: int):
        self.cfg, self.contaminants, self.workers = cfg, contaminants, workers
        self.pool = None

    def __enter__(self) -> _Runner:
        if self.workers > 1:
            import multiprocessing as mp
            import tempfile
            from concurrent.futures import ProcessPoolExecutor

            fd, self.shared = tempfile.mkstemp(prefix="aiayn-clean-", suffix=".txt")
            with os.fdopen(fd, "wb") as f:
                f.write(b"\n".join(sorted(self.contaminants)))
            self.pool = ProcessPoolExecutor(
                self.workers,
                mp_context=mp.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.cfg, self.shared),
            )
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=exc[0] is not None)
            os.unlink(self.shared)

    def map(self, chunks: Iterator[tuple[bytes, bytes]]) -> Iterator[ChunkResult]:
        if self.pool is None:
            for en, de in chunks:
                yield clean_chunk(en, de, self.cfg, self.contaminants)
            return
        from concurrent.futures.process import BrokenProcessPool

        window = 2 * self.workers  # chunks in flight: bounds memory
        pending: deque = deque()
        try:
            for en, de in chunks:
                pending.append(self.pool.submit(_work, en, de))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool as e:
            raise AiaynError(
                f"clean: a worker process died or failed to start ({e}); lower clean.workers "
                "if memory is short (1: clean in this process)"
            ) from e


# ----------------------------------------------------------------------------- statistics


@dataclass
class CorpusStats:
    """Counts for one corpus (or the total)."""

    input: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FILTERS, 0))
    invalid_utf8: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("en_lines", "en_replacements", "de_lines", "de_replacements"), 0
        )
    )
    html: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HTML_KEYS, 0))

    def add(self, r: ChunkResult) -> None:
        self.input += r.pairs
        for name, n in zip(FILTERS, r.dropped, strict=True):
            self.dropped[name] += n
        for key, n in zip(self.invalid_utf8, r.invalid, strict=True):
            self.invalid_utf8[key] += n
        for key, n in zip(HTML_KEYS, r.html, strict=True):
            self.html[key] += n

    def merge(self, other: CorpusStats) -> None:
        self.input += other.input
        self.kept += other.kept
        for k, v in other.dropped.items():
            self.dropped[k] += v
        for k, v in other.invalid_utf8.items():
            self.invalid_utf8[k] += v
        for k, v in other.html.items():
            self.html[k] += v

    def as_dict(self) -> dict:
        return {
            "input": self.input,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "dropped_total": sum(self.dropped.values()),
            "invalid_utf8": dict(self.invalid_utf8),
            "html": dict(self.html),
        }


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
    workers = _workers(cfg) if total_pairs >= PARALLEL_MIN_PAIRS else 1

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
            _Runner(cfg, contaminants, workers) as runner,
            tqdm(total=total_pairs, unit=" pairs", unit_scale=total_pairs > 99_999) as bar,
        ):
            for name, (en_path, de_path) in train_files.items():
                bar.set_description(name)
                st = stats[name] = CorpusStats()
                for r in runner.map(_read_chunks(en_path, de_path, CHUNK_PAIRS)):
                    st.add(r)
                    en_out, de_out, kept = r.en, r.de, len(r.digests) // 8
                    if cfg.dedup and kept:
                        dups = _dedup(r.digests, seen)
                        if dups:
                            en_out, de_out = _drop_lines(en_out, dups), _drop_lines(de_out, dups)
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
        report = _report(stats, {k: v[2] for k, v in evals.items()})
        fj.write(json.dumps(report, indent=2) + "\n")
        fm.write(_markdown(report, cfg))
    return report


def _dedup(digests: bytes, seen: set[int]) -> list[int]:
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


def _drop_lines(data: bytes, drop: list[int]) -> bytes:
    lines = data.split(b"\n")[:-1]
    gone = set(drop)
    return b"".join(s + b"\n" for i, s in enumerate(lines) if i not in gone)


# ----------------------------------------------------------------------------- reports


def _report(stats: dict[str, CorpusStats], evals: dict[str, dict]) -> dict:
    total = CorpusStats()
    for st in stats.values():
        total.merge(st)
    return {
        "corpora": {name: st.as_dict() for name, st in stats.items()},
        "total": total.as_dict(),
        **evals,
    }


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _markdown_table(df) -> str:
    """A GitHub markdown table of a DataFrame (pandas' own needs the tabulate package)."""
    cols = [df.index.name or "", *map(str, df.columns)]
    out = ["| " + " | ".join(cols) + " |", "|---|" + "---:|" * (len(cols) - 1)]
    for row in df.itertuples():  # keeps each column's dtype
        cells = [v.item() if hasattr(v, "item") else v for v in row]
        out.append("| " + " | ".join(_fmt(v) for v in cells) + " |")
    return "\n".join(out) + "\n"


def _markdown(report: dict, cfg: CleanConfig) -> str:
    """``reports/data.md``: per corpus and filter, pairs dropped and kept (a pandas table)."""
    import pandas as pd

    rows = {name: d for name, d in report["corpora"].items()} | {"total": report["total"]}
    df = pd.DataFrame(
        {name: {"input": d["input"], **d["dropped"], "kept": d["kept"]} for name, d in rows.items()}
    ).T
    df.index.name = "corpus"
    df = df.astype("int64")
    df["kept %"] = (100.0 * df["kept"] / df["input"].where(df["input"] > 0)).fillna(0.0)

    def per_set(key: str):  # one row per corpus, total, dev and test
        t = pd.DataFrame({name: d[key] for name, d in rows.items()}).T.astype("int64")
        t.index.name = "corpus"
        for split in ("dev", "test"):
            t.loc[split] = pd.Series(report[split][key])
        return t

    settings = ", ".join(f"{k}={v}" for k, v in vars(cfg).items() if k != "workers")
    parts = [
        "# Training data: what cleaning kept and dropped\n",
        "Pairs per corpus. Filters run in the column order below; a pair that several "
        "filters would drop is counted once, under the first.\n",
        _markdown_table(df),
        "| filter | drops a pair when |\n|---|---|\n"
        + "".join(f"| {f} | {FILTER_HELP[f]} |\n" for f in FILTERS),
        f"Settings: {settings}.\n",
        f"Dev and test are normalised, never filtered: dev {report['dev']['lines']:,} lines, "
        f"test {report['test']['lines']:,} lines.\n",
        "## Invalid UTF-8 (replaced by U+FFFD)\n",
        _markdown_table(per_set("invalid_utf8")),
        "## HTML (tags removed, entities unescaped)\n",
        "Lines per side that `strip_html` changed, before any filter, and pairs with either "
        "side changed"
        + ("" if cfg.strip_html else " (strip_html is off: HTML was left as it is)")
        + ".\n",
        _markdown_table(per_set("html")),
    ]
    return "\n".join(parts)
