"""Noise for the cleaner to find: the kinds of broken pairs real web-crawled corpora hold
(duplicates, empty sides, overlong lines, length-ratio outliers, untranslated copies, HTML,
control characters, dev/test contamination), how to make each from clean pairs, and
:func:`noise_kind`, which tells them apart.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from aiayn.data.demo.profiles import MAX_RATIO, balanced, word_count

NOISE_KINDS = ("duplicate", "empty", "overlong", "ratio", "copy", "html", "control",
               "contamination")  # fmt: skip
NOISE_WEIGHTS = {"duplicate": 0.24, "empty": 0.08, "overlong": 0.05, "ratio": 0.12,
                  "copy": 0.12, "html": 0.18, "control": 0.11, "contamination": 0.10}  # fmt: skip
# Zero-width, format and C0/C1 control characters; none of them is a line break for
# Python's str.splitlines() or a whitespace for str.split().
CONTROL_CHARS = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\x07\x1b\x7f\x01"
HTML_RE = re.compile(r"</?[a-zA-Z][^>]*>|&[a-zA-Z]+;|&#\d+;")
CONTROL_RE = re.compile("[" + re.escape(CONTROL_CHARS) + "]")
_OVERLONG_WORDS = 250  # the cleaner's default clean.max_words
_HTML_SITES = ("hotel-berlin", "shop", "news", "produkte", "angebote", "blog", "forum")


def allocate(total: int, weights: dict[str, float], at_least_one: bool = False) -> dict:
    """Split ``total`` over ``weights`` by largest remainder (deterministic)."""
    keys = [k for k, w in weights.items() if w > 0]
    if not keys:
        return {}
    wsum = sum(weights[k] for k in keys)
    exact = {k: total * weights[k] / wsum for k in keys}
    out = {k: int(exact[k]) for k in keys}
    rest = total - sum(out.values())
    for k in sorted(keys, key=lambda k: (out[k] - exact[k], keys.index(k)))[:rest]:
        out[k] += 1
    if at_least_one and total >= len(keys):
        for k in keys:
            while out[k] == 0:
                donor = max(keys, key=lambda j: out[j])
                out[donor] -= 1
                out[k] += 1
    return {k: out.get(k, 0) for k in weights}


class NoiseMaker:
    """Builds noisy pairs of each kind from fresh clean pairs of one flavour."""

    def __init__(self, rng: random.Random, fresh) -> None:
        self.rng = rng
        self.fresh = fresh  # () -> a new clean pair, unique on both sides

    def make(self, kind: str, originals: Sequence[tuple[str, str]], contaminants) -> tuple:
        rng = self.rng
        if kind == "duplicate":
            return originals[int(rng.random() * len(originals))]
        if kind == "contamination":
            return contaminants.pop()
        if kind == "overlong":
            ens, des = [], []
            while min(word_count(" ".join(ens)), word_count(" ".join(des))) <= _OVERLONG_WORDS + 5:
                en, de = self.fresh()
                ens.append(en)
                des.append(de)
            return " ".join(ens), " ".join(des)
        en, de = self.fresh()
        if kind == "empty":
            return ("", de) if rng.random() < 0.5 else (en, "")
        if kind == "copy":  # untranslated: the source on both sides (or German twice)
            return (en, en) if rng.random() < 0.7 else (de, de)
        if kind == "ratio":  # one side carries extra sentences: ratio >= 2.5
            long_de = rng.random() < 0.6
            short, longer = (en, [de]) if long_de else (de, [en])
            while word_count(" ".join(longer)) < 2.5 * word_count(short):
                longer.append(self.fresh()[1 if long_de else 0])
            joined = " ".join(longer)
            return (short, joined) if long_de else (joined, short)
        if kind == "html":
            return self._html(en, de)
        if kind == "control":
            return self._control(en, de)
        raise ValueError(f"unknown noise kind {kind!r}")

    def _html(self, en: str, de: str) -> tuple[str, str]:
        rng = self.rng
        x = rng.random()
        if x < 0.25:
            tag = rng.choice(("<br>", "<br />", "</p>", "</div>"))
            f = lambda s: f"{s} {tag}"  # noqa: E731
        elif x < 0.45:
            f = lambda s: s.replace(" ", "&nbsp;", 1)  # noqa: E731
        elif x < 0.65:
            url = f"http://www.example.com/{rng.choice(_HTML_SITES)}/{rng.randint(1, 999)}.html"
            f = lambda s: f'<a href="{url}">{s}</a>'  # noqa: E731
        elif x < 0.85:
            tag = rng.choice(("b", "p", "strong", "li", "span"))
            f = lambda s: f"<{tag}>{s}</{tag}>"  # noqa: E731
        else:
            ent = rng.choice(("&amp;", "&gt;&gt;", "&#8226;", "&raquo;"))
            f = lambda s: f"{s} {ent}"  # noqa: E731
        if rng.random() < 0.8:
            pair = f(en), f(de)
        else:
            pair = (f(en), de) if rng.random() < 0.5 else (en, f(de))
        if balanced(*pair):
            return pair
        return f"<b>{en}</b>", f"<b>{de}</b>"  # adds no words: the ratio filter keeps it

    def _control(self, en: str, de: str) -> tuple[str, str]:
        rng = self.rng

        def insert(s: str) -> str:
            c = rng.choice(CONTROL_CHARS)
            if c < " " or c == "\x7f":  # C0 controls: at a word boundary, like a stray tab
                at = [0, len(s)] + [j for j, ch in enumerate(s) if ch == " "]
                i = rng.choice(at)
            else:  # zero-width and format characters: anywhere, also inside words
                i = rng.randint(0, len(s))
            return s[:i] + c + s[i:]

        x = rng.random()
        if x < 0.4:
            return insert(en), de
        if x < 0.8:
            return en, insert(de)
        return insert(en), insert(de)


def noise_kind(en: str, de: str, contaminated: set[str] | None = None) -> str | None:
    """The kind of noise a line-aligned pair shows, or None for a clean pair.

    Checked in this order: empty, overlong, html, control, copy, ratio, contamination
    (``contaminated``: the dev/test segments of both languages). Exact duplicates are a
    property of the corpus, not of one pair, and are not detected here.
    """
    if not en.strip() or not de.strip():
        return "empty"
    a, b = word_count(en), word_count(de)
    if a > _OVERLONG_WORDS or b > _OVERLONG_WORDS:
        return "overlong"
    if HTML_RE.search(en) or HTML_RE.search(de):
        return "html"
    if CONTROL_RE.search(en) or CONTROL_RE.search(de):
        return "control"
    if en == de:
        return "copy"
    if max(a, b) > MAX_RATIO * min(a, b):
        return "ratio"
    if contaminated is not None and (en in contaminated or de in contaminated):
        return "contamination"
    return None


def inject(clean: list, noisy: list, rng: random.Random) -> list:
    """``clean`` with ``noisy`` inserted at random positions (order of each kept)."""
    if not noisy:
        return list(clean)
    total = len(clean) + len(noisy)
    at = set(rng.sample(range(total), len(noisy)))
    ci, ni = iter(clean), iter(noisy)
    return [next(ni) if i in at else next(ci) for i in range(total)]
