"""The language-plausibility heuristic of the ``lang`` filter: function words and script."""

from __future__ import annotations

import re

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
