"""Normalisation of the clean stage (steps 1-6 of :mod:`aiayn.data.clean`): UTF-8 decoding
with U+FFFD for invalid bytes, HTML stripping, line breaks, control and invisible characters,
NFC and whitespace; per line (:func:`normalize_line`, the definition) and per block of lines
(:func:`normalize_text`, :func:`normalize_block`: the same, faster).
"""

from __future__ import annotations

import bisect
import functools
import html
import html.entities
import itertools
import re
import unicodedata
from typing import NamedTuple

from aiayn.config import CleanConfig

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
    """Step 2 of :mod:`aiayn.data.clean`: remove tags, then unescape entities ending in ``;``.

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
    """Steps 2-6 of :mod:`aiayn.data.clean` on one line: the definition of normalisation.

    :func:`normalize_text` computes the same for many lines at once, faster.
    """
    if cfg.strip_html:
        line = strip_html(line)
    return _normalize_chars(line, cfg)


def _normalize_chars(line: str, cfg: CleanConfig) -> str:
    """Steps 3-6 of :mod:`aiayn.data.clean` on one line."""
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


def normalized_bytes(data: bytes, cfg: CleanConfig) -> tuple[list[bytes], int, int, list[int]]:
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
