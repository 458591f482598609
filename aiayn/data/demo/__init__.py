"""The offline demo corpus: a seeded English->German mini-language in the WMT14 layout.

``data.source: demo`` builds its raw data here instead of downloading it. The language is
small enough that a 3+3-layer Transformer learns it in minutes on a CPU, and German enough
that it cannot be learned by copying:

* a lexicon of ~550 lemmas (~450 without names and numbers): nouns with gender and German
  plural (some weak masculine nouns, e.g. ``den Präsidenten``), adjectives, verbs
  (conjugated for person and number, strong and separable ones included), adverbs, person
  and place names, number words;
* article and adjective agreement by gender, number and case (nominative, accusative,
  dative, genitive; strong, weak and mixed adjective endings), prepositions that govern
  cases, contractions (``im``, ``zum``, ``vom``), ``nicht ... ein`` -> ``kein``;
* verb-second main clauses (a fronted time phrase, connector or subordinate clause inverts
  subject and verb), verb brackets (``hat ... unterstützt``, ``kündigt ... an``) and
  verb-final subordinate clauses (``, dass/weil/wenn/ob ...``);
* closed compounds (``Stadtrat``, ``Regierungsplan``) and hyphenated ones (``EU-Kommission``,
  ``CO2-Emissionen``, ``US-Präsident``); digits with German decimal comma and thousands dot
  (``3.5`` -> ``3,5``, ``12,500`` -> ``12.500``), dates (``am 12. Mai``); German quotation
  marks (``„...“``) for English ``"..."``; English apostrophes (``Merkel's``, ``doesn't``).

The translation of a sentence is a deterministic function of its source: one German word
per English lemma in context, no synonyms, no free word order. Several English variants may
map to the same German (``does not``/``doesn't``, ``that`` left out), never the reverse.

Modules (each imports only those above it):

* ``lexicon.txt``: the lemma tables (data); :mod:`~aiayn.data.demo.lexicon` reads them into
  word classes and German noun forms (:data:`LEXICON`);
* :mod:`~aiayn.data.demo.grammar`: closed-class words, :class:`NP`, :class:`PP`,
  :class:`Clause` and their English and German word order;
* :mod:`~aiayn.data.demo.sampler`: :class:`SentenceGenerator`, random sentences of one
  corpus flavour;
* :mod:`~aiayn.data.demo.profiles`: length profiles and :func:`generate_pairs`;
* :mod:`~aiayn.data.demo.noise`: the noise kinds, how to make them, :func:`noise_kind`;
* :mod:`~aiayn.data.demo.writer`: :func:`write_parallel`;
* :mod:`~aiayn.data.demo.layout`: :func:`generate_demo`, the WMT14 layout.

Public API (importable from here):

* :func:`generate_demo` writes the official extracted WMT14 archive layout (training
  corpora, ``dev/newstest2013``, ``test-full/newstest2014`` SGML) and returns a summary;
* :func:`generate_pairs` streams clean pairs with a length profile (``demo``, ``newstest``,
  ``wmt``), and :func:`write_parallel` writes millions of them (optionally with noise) on
  all cores, deterministically for a seed: for the benchmarks. (It starts worker processes
  with "spawn": a calling script needs the usual ``if __name__ == "__main__":`` guard.)
* :func:`noise_kind` classifies a pair by the noise it carries; the grammar (:class:`NP`,
  :class:`Clause`, :func:`main_de`, :func:`sub_de`, ...) is public for tests and the REPL.
"""

from aiayn.data.demo.grammar import (
    MODALS,
    NP,
    PP,
    PRONOUNS,
    SUBORDINATORS,
    Clause,
    clause_en,
    imperative_de,
    imperative_en,
    main_de,
    np_de,
    np_en,
    pp_de,
    pp_en,
    question_de,
    question_en,
    sub_de,
)
from aiayn.data.demo.layout import DEV_FILE, TEST_REF, TEST_SRC, TRAIN_FILES, generate_demo
from aiayn.data.demo.lexicon import (
    ACC,
    DAT,
    GEN,
    LEXICON,
    NOM,
    PL,
    Adjective,
    F,
    Lexicon,
    M,
    N,
    Name,
    Noun,
    Verb,
    lexicon_stats,
)
from aiayn.data.demo.noise import CONTROL_CHARS, CONTROL_RE, HTML_RE, NOISE_KINDS, noise_kind
from aiayn.data.demo.profiles import PROFILES, generate_pairs
from aiayn.data.demo.sampler import CORPUS_SHARE, FLAVOURS, Flavour, SentenceGenerator
from aiayn.data.demo.writer import write_parallel

__all__ = [
    "ACC", "CONTROL_CHARS", "CONTROL_RE", "CORPUS_SHARE", "DAT", "DEV_FILE", "F", "FLAVOURS",
    "GEN", "HTML_RE", "LEXICON", "M", "MODALS", "N", "NOISE_KINDS", "NOM", "NP", "PL", "PP",
    "PRONOUNS", "PROFILES", "SUBORDINATORS", "TEST_REF", "TEST_SRC", "TRAIN_FILES",
    "Adjective", "Clause", "Flavour", "Lexicon", "Name", "Noun", "SentenceGenerator", "Verb",
    "clause_en", "generate_demo", "generate_pairs", "imperative_de", "imperative_en",
    "lexicon_stats", "main_de", "noise_kind", "np_de", "np_en", "pp_de", "pp_en",
    "question_de", "question_en", "sub_de", "write_parallel",
]  # fmt: skip
