"""The demo language's sentence sampler: :class:`SentenceGenerator` draws random clause
structures (:mod:`aiayn.data.demo.grammar`) over the lexicon, weighted by a corpus
:class:`Flavour` (domains, sentence templates, verb frames, tenses, subjects), and renders
each as an (English, German) sentence pair.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from aiayn.data.demo.grammar import (
    NP,
    PP,
    SUBORDINATORS,
    Clause,
    clause_en,
    de_verb,
    en_chain,
    imperative_de,
    imperative_en,
    main_de,
    np_de,
    np_en,
    pp_de,
    pp_en,
    prep_object,
    question_de,
    question_en,
    rest_en,
    with_comma,
)
from aiayn.data.demo.lexicon import ACC, LEXICON, NOM, Adjective, Noun, Verb


@dataclass(frozen=True)
class Flavour:
    """How one corpus samples the shared grammar: lemma weights by domain and the weights
    of sentence templates, verb frames, tenses and subjects."""

    name: str
    domains: dict[str, int]
    templates: dict[str, float]
    frames: dict[str, float]
    tenses: dict[str, float]
    pron: float = 0.18  # subject is a pronoun
    pronouns: str = "i we he she it they you"
    person: float = 0.06  # subject is a person name
    title: float = 0.02  # Mr/Mrs X
    place: float = 0.03
    opener: float = 0.0  # "Mr President, ..."
    time: float = 0.22
    front_time: float = 0.4
    dated: float = 0.25  # share of weekday/month/date/year time phrases
    connector: float = 0.04
    numbers: float = 0.04  # amounts of money as objects
    pp: float = 0.2


_BASE_FRAMES = {"A": 0.40, "I": 0.07, "D": 0.06, "DA": 0.05, "P": 0.07, "M": 0.03, "C": 0.01,
                "S": 0.10, "W": 0.02, "BE": 0.14, "EXIST": 0.05}  # fmt: skip
_BASE_TENSES = {"pres": 0.45, "perf": 0.22, "fut": 0.1, "can": 0.06, "must": 0.06,
                "should": 0.03, "want": 0.04, "would": 0.04}  # fmt: skip


def _with(base: dict[str, float], **kw: float) -> dict[str, float]:
    return {**base, **kw}


FLAVOURS = {
    "europarl-v7": Flavour(
        "europarl-v7",
        {"parl": 6, "core": 3, "econ": 2, "news": 1, "web": 1},
        {"main": 0.58, "sub_trail": 0.15, "sub_front": 0.08, "coord": 0.06, "question": 0.04,
         "wh": 0.04, "quote_pre": 0.025, "quote_post": 0.025},
        _with(_BASE_FRAMES, S=0.16, BE=0.12, C=0.0),
        _with(_BASE_TENSES, would=0.08, must=0.09, pres=0.4),
        pron=0.3, pronouns="i i we we we it they you he she", person=0.03, title=0.04,
        opener=0.15, time=0.15, connector=0.07, numbers=0.02,
    ),
    "commoncrawl": Flavour(
        "commoncrawl",
        {"web": 6, "core": 3, "news": 1, "econ": 1, "parl": 1},
        {"main": 0.54, "sub_trail": 0.07, "sub_front": 0.05, "coord": 0.04, "question": 0.07,
         "wh": 0.04, "imperative": 0.11, "fragment": 0.07, "quote_pre": 0.005,
         "quote_post": 0.005},
        _with(_BASE_FRAMES, C=0.05, BE=0.16, S=0.03, W=0.01, M=0.01),
        _with(_BASE_TENSES, pres=0.6, perf=0.12, can=0.1, must=0.03, should=0.02),
        pron=0.25, pronouns="we we we you you it they i", person=0.02, title=0.0, place=0.02,
        time=0.18, connector=0.03, numbers=0.06,
    ),
    "news-commentary-v9": Flavour(
        "news-commentary-v9",
        {"econ": 6, "core": 3, "parl": 2, "news": 2, "web": 1},
        {"main": 0.56, "sub_trail": 0.13, "sub_front": 0.07, "coord": 0.06, "question": 0.03,
         "wh": 0.04, "quote_pre": 0.055, "quote_post": 0.055},
        _with(_BASE_FRAMES, M=0.1, S=0.12, C=0.02),
        _with(_BASE_TENSES, perf=0.25, fut=0.12),
        pron=0.1, pronouns="we we it they he she", person=0.04, title=0.01, place=0.08,
        time=0.25, connector=0.1, numbers=0.08,
    ),
    "news": Flavour(  # newstest2013/2014-like dev and test sets
        "news",
        {"news": 6, "core": 3, "econ": 3, "parl": 2, "web": 1},
        {"main": 0.58, "sub_trail": 0.1, "sub_front": 0.06, "coord": 0.05, "question": 0.02,
         "wh": 0.02, "quote_pre": 0.08, "quote_post": 0.09},
        _with(_BASE_FRAMES, S=0.12, I=0.1, M=0.04),
        _with(_BASE_TENSES, perf=0.35, pres=0.35),
        pron=0.12, pronouns="he she it they we", person=0.12, title=0.05, place=0.04,
        time=0.3, dated=0.45, connector=0.04, numbers=0.05,
    ),
}  # fmt: skip

# Share of training pairs per corpus (renormalised over the corpora asked for).
CORPUS_SHARE = {"europarl-v7": 0.4, "commoncrawl": 0.4, "news-commentary-v9": 0.2}

_SG_DETS = ["the"] * 26 + ["a"] * 11 + ["this"] * 3 + ["our"] * 2 + ["their"] * 2 + \
    ["his", "her", "my", "your", "every", "no", "poss"]  # fmt: skip
_PL_DETS = ["the"] * 20 + ["zero"] * 9 + ["num"] * 7 + ["this"] * 2 + ["our"] * 2 + \
    ["their", "many", "some", "no"]  # fmt: skip
_MEASURABLE = ["inflation", "growth", "price", "wage", "export", "profit", "debt", "income",
               "interest rate", "unemployment rate", "tax", "emission", "loss"]  # fmt: skip
_SPEAKERS = ["minister", "spokesman", "president", "mayor", "police", "expert", "judge",
             "coach", "prime minister", "finance minister", "researcher", "government"]  # fmt: skip
_OPENERS = [(["Mr", "President,"], ["Herr", "Präsident,"]),
            (["Madam", "President,"], ["Frau", "Präsidentin,"]),
            (["ladies", "and", "gentlemen,"], ["meine", "Damen", "und", "Herren,"]),
            (["Commissioner,"], ["Herr", "Kommissar,"])]  # fmt: skip
_WH = [("why", "warum"), ("when", "wann"), ("where", "wo"), ("how", "wie")]
_TENSE_CLASS = {"pres": ("any", "pres"), "perf": ("any", "past"), "past": ("any", "past")}


def _cumulative(weights: dict[str, float]) -> tuple[list[str], list[float]]:
    keys = [k for k, w in weights.items() if w > 0]
    cum, total = [], 0.0
    for k in keys:
        total += weights[k]
        cum.append(total)
    return keys, [c / total for c in cum]


def _swap_marks(s: str) -> str:
    """English number punctuation to German: 12,500.5 -> 12.500,5."""
    return s.translate(_SWAP)


_SWAP = str.maketrans(",.", ".,")


class _Tables:
    """Weighted lists for one flavour, built once."""

    def __init__(self, f: Flavour) -> None:
        lex = LEXICON

        def weight(domains: frozenset[str]) -> int:
            return max(f.domains.get(d, 1) for d in domains)

        self.nouns = [n for n in lex.nouns.values() for _ in range(weight(n.domains) * 2)]
        self.nouns += [n for n in lex.compounds.values() for _ in range(weight(n.domains))]
        self.count_nouns = [n for n in self.nouns if not n.mass]
        self.adjs = [a for a in lex.adjectives for _ in range(weight(a.domains))]
        self.manners = [a for a in lex.adjectives if a.adverb]
        # Ordinals are attributive only: "the first plan", never "the plan is first".
        self.preds = [a for a in self.adjs if a.en not in ("first", "second", "last", "next")]
        self.verbs: dict[str, list[tuple[Verb, str]]] = {}
        for v in lex.verbs:
            for fr in v.frames:
                key = fr.split(":")[0] if fr[0] in "ADP" and fr != "DA" else fr
                self.verbs.setdefault(key, []).extend([(v, fr)] * weight(v.domains))
        self.imperative = [vf for vf in self.verbs["A"] if "web" in vf[0].domains or vf[1] == "A"]
        self.measurable = [lex.nouns[k] for k in _MEASURABLE]
        self.speakers = [lex.nouns[k] for k in _SPEAKERS]
        self.templates = _cumulative(f.templates)
        self.frames = _cumulative(f.frames)
        self.tenses = _cumulative(f.tenses)
        self.pronouns = f.pronouns.split()
        self.time = {
            cls: [(en.split(), de.split()) for en, de, c in lex.time_adverbs if c in (cls, "any")]
            for cls in ("any", "pres", "past", "fut")
        }
        self.possessors = [p for p in lex.persons if p.possessive]


_TABLES: dict[str, _Tables] = {}


def _tables(name: str) -> _Tables:
    if name not in _TABLES:
        _TABLES[name] = _Tables(FLAVOURS[name])
    return _TABLES[name]


class SentenceGenerator:
    """Random sentences of one flavour; ``pair()`` returns (English, German)."""

    def __init__(self, flavour: str, rng: random.Random) -> None:
        self.f = FLAVOURS[flavour]
        self.t = _tables(flavour)
        self.rng = rng
        self.r = r = rng.random
        self.randint = rng.randint

        def choice(seq):  # like rng.choice, about twice as fast
            return seq[int(r() * len(seq))]

        self.choice = choice

    def _pick(self, table: tuple[list[str], list[float]]) -> str:
        keys, cum = table
        x = self.r()
        for k, c in zip(keys, cum, strict=True):
            if x < c:
                return k
        return keys[-1]

    # ---------------------------------------------------------------- numbers
    def count(self) -> tuple[str, str]:
        """A plural quantity: number word, digits, or thousands (German dot)."""
        x = self.r()
        if x < 0.55:
            return self.choice(LEXICON.number_words)  # type: ignore[return-value]
        if x < 0.88:
            s = str(self.randint(13, 999))
            return s, s
        s = f"{self.randint(1, 99) * 1000 + self.randint(0, 9) * 100:,}"
        return s, _swap_marks(s)

    def decimal(self) -> tuple[str, str]:
        s = (
            f"{self.randint(1, 19)}.{self.randint(1, 9)}"
            if self.r() < 0.7
            else str(self.randint(2, 40))
        )
        return s, _swap_marks(s)

    def money(self) -> NP:
        """An amount: 19.99 euros, 250 euros, 2.5 million euros, 3 billion dollars."""
        x = self.r()
        if x < 0.35:
            s = f"{self.randint(1, 99)}.{self.randint(10, 99)}"
            num = (s, _swap_marks(s))
        elif x < 0.7:
            s = f"{self.randint(2, 9999):,}"
            num = (s, _swap_marks(s))
        else:
            en, de = self.decimal()
            big = ("million", "Millionen") if self.r() < 0.6 else ("billion", "Milliarden")
            num = (f"{en} {big[0]}", f"{de} {big[1]}")
        unit = LEXICON.units["euro" if self.r() < 0.75 else "dollar"]
        return NP(unit, "zero", num=num, plural=True)

    # ---------------------------------------------------------------- noun phrases
    def adj(self, p: float = 0.28) -> Adjective | None:
        return self.choice(self.t.adjs) if self.r() < p else None

    def noun_np(self, gen_ok: bool = True, noun: Noun | None = None) -> NP:
        r, choice = self.r, self.choice
        if noun is None:
            noun = choice(self.t.nouns)
        gen = self.genitive() if gen_ok and r() < 0.07 else None
        if noun.mass:
            det = choice(("the", "the", "zero", "zero", "this", "our"))
            return NP(noun, det, adj=self.adj(), gen=gen)
        if r() < 0.32:
            det = choice(_PL_DETS)
            num = None
            if det == "num":
                det, num = "zero", self.count()
            return NP(noun, det, adj=self.adj(), num=num, plural=True, gen=gen)
        det = choice(_SG_DETS)
        if det == "poss":
            return NP(noun, "the", adj=self.adj(0.15), poss=choice(self.t.possessors))
        return NP(noun, det, adj=self.adj(), gen=gen)

    def genitive(self) -> NP:
        noun = self.choice(self.t.nouns)
        plural = not noun.mass and self.r() < 0.25
        det = self.choice(("the", "the", "the", "this", "our") if plural or noun.mass else
                          ("the", "the", "the", "a", "this", "our"))  # fmt: skip
        return NP(noun, det, adj=self.adj(0.15), plural=plural)

    def subject(self) -> NP:
        f, x = self.f, self.r()
        if x < f.pron:
            return NP(pron=self.choice(self.t.pronouns))
        x -= f.pron
        if x < f.person:
            return NP(name=self.choice(LEXICON.persons))
        x -= f.person
        if x < f.title:
            return NP(name=self.choice(LEXICON.titles))
        x -= f.title
        if x < f.place:
            return NP(name=self.choice(LEXICON.places))
        return self.noun_np()

    def object_np(self, pron_ok: bool = True) -> NP:
        x = self.r()
        if pron_ok and x < 0.08:
            return NP(pron=self.choice(("i", "you", "he", "she", "it", "we", "they")))
        if x < 0.13:
            return NP(name=self.choice(LEXICON.persons if self.r() < 0.5 else LEXICON.places))
        if x < 0.13 + self.f.numbers:
            return self.money()
        return self.noun_np()

    def dative_np(self) -> NP:
        x = self.r()
        if x < 0.15:
            return NP(pron=self.choice(("i", "you", "he", "she", "we", "they")))
        if x < 0.3:
            return NP(name=self.choice(LEXICON.persons))
        if x < 0.35:
            return NP(name=self.choice(LEXICON.titles))
        return self.noun_np()

    def pp(self) -> PP:
        prep = self.choice(("with", "for", "in", "in", "from", "after", "during", "against",
                            "without", "at", "on", "to", "to", "through", "since", "into",
                            "about"))  # fmt: skip
        if prep in ("in", "to", "from") and self.r() < 0.35:
            return PP(prep, NP(name=self.choice(LEXICON.places)))
        return PP(prep, self.noun_np(gen_ok=False))

    # ---------------------------------------------------------------- adverbials
    def time_expr(self, tense: str) -> tuple[list[str], list[str]]:
        cls_ = _TENSE_CLASS.get(tense, ("any", "fut"))[1]
        if self.r() >= self.f.dated:
            return self.choice(self.t.time[cls_])
        x = self.r()
        if x < 0.3:
            wd = self.choice(LEXICON.weekdays)
            return ["on", wd.en[0]], ["am", wd.forms[0][0]]
        if x < 0.5:
            mo = self.choice(LEXICON.months)
            return ["in", mo.en[0]], ["im", mo.forms[0][0]]
        if x < 0.7:
            mo, d = self.choice(LEXICON.months), str(self.randint(1, 28))
            return ["on", d, mo.en[0]], ["am", d + ".", mo.forms[0][0]]
        if x < 0.85 and cls_ != "pres":
            y = str(self.randint(1990, 2014) if cls_ == "past" else self.randint(2015, 2030))
            return ["in", y], ["im", "Jahr", y]
        h = str(self.randint(1, 12))
        return ["at", h, "o'clock"], ["um", h, "Uhr"]

    # ---------------------------------------------------------------- clauses
    def clause(self, depth: int = 0, *, question: bool = False) -> Clause:
        r, choice = self.r, self.choice
        frame_key = self._pick(self.t.frames)
        if (depth >= 2 or question) and frame_key in ("S", "W"):
            frame_key = "A"
        tense = self._pick(self.t.tenses)
        if frame_key == "BE":
            verb: Verb | str = "be"
            frame = "BE"
        elif frame_key == "EXIST":
            verb, frame = "exist", "A"
            if tense not in ("pres", "perf", "fut"):
                tense = "pres"
        else:
            verb, frame = choice(self.t.verbs[frame_key])
        if frame_key == "M":
            subj = self.noun_np(noun=choice(self.t.measurable))
        else:
            subj = self.subject()
        cl = Clause(subj, verb, frame, tense)
        if frame_key == "BE":
            if r() < 0.72:
                a = choice(self.t.preds)
                cl.pred = ([a.en], [a.de])
            else:
                pp = PP("in", NP(name=choice(LEXICON.places)) if r() < 0.5 else
                        self.noun_np(gen_ok=False))  # fmt: skip
                cl.pred = (pp_en(pp), pp_de(pp))
        elif frame_key == "EXIST":
            cl.acc = self.noun_np()
            if cl.acc.det in ("the", "this", "every") or cl.acc.poss is not None:
                cl.acc.det, cl.acc.poss = ("zero" if cl.acc.plural else "a"), None
        elif frame in ("A", "A:for"):
            cl.acc = self.object_np()
        elif frame_key == "D":
            cl.dat = self.dative_np()
        elif frame == "DA":
            cl.dat, cl.acc = self.dative_np(), self.object_np(pron_ok=False)
            cl.dat_to = r() < 0.5
        elif frame_key == "P":
            _, en, de, case = frame.split(":")
            o = self.noun_np(gen_ok=False) if r() < 0.85 else NP(name=choice(LEXICON.persons))
            cl.vpp = prep_object(en, de, case, o)
        elif frame_key == "M":
            en, de = ("by", "um") if r() < 0.6 else ("to", "auf")
            amount = NP(LEXICON.units["percent"], "zero", num=self.decimal(), plural=True)
            cl.vpp = ([en] + np_en(amount), [de] + np_de(amount, ACC))
        elif frame_key == "C":
            cl.acc = self.money()
        elif frame_key in ("S", "W"):
            cl.comp = ("that" if frame_key == "S" else "whether", self.clause(depth + 1))
            cl.that = r() < 0.75
        if tense != "past" and not question and r() < 0.12:
            # no double negation: "no plan" is already negative
            cl.neg = all(np is None or np.det != "no" for np in (subj, cl.acc, cl.dat))
        cl.contract = r() < 0.35
        if r() < self.f.time / (depth + 1):
            cl.time = self.time_expr(tense)
            if depth == 0 and not question and r() < self.f.front_time:
                cl.front = "time"
        if not cl.neg and r() < 0.06:
            cl.freq = choice(LEXICON.freq_adverbs)
        if frame in ("I", "A") and isinstance(verb, Verb) and r() < 0.07:
            a = choice(self.t.manners)
            cl.manner = (a.adverb, a.de)
        if cl.comp is None and cl.pred is None and r() < self.f.pp / (depth + 1):
            cl.pps = (self.pp(),)
        if depth == 0 and cl.front == "subj" and not question and r() < self.f.connector:
            cl.front = "connector"
            cl.connector = choice(LEXICON.connectors)
        return cl

    # ---------------------------------------------------------------- sentences
    def pair(self) -> tuple[str, str]:
        """One sentence pair (English, German)."""
        t = self._pick(self.t.templates)
        en: list[str]
        de: list[str]
        end = "."
        if t == "main":
            cl = self.clause()
            en, de = clause_en(cl), main_de(cl)
        elif t in ("sub_trail", "sub_front"):
            cl = self.clause()
            if cl.front == "connector" and t == "sub_front":
                cl.front = "subj"
            cl.sub = (self.choice(tuple(SUBORDINATORS)), self.clause(1))
            if t == "sub_front" and cl.front == "subj":
                cl.front = "sub"
            en, de = clause_en(cl), main_de(cl)
        elif t == "coord":
            a, b = self.clause(1), self.clause(1)
            if self.r() < 0.7:
                en = clause_en(a) + ["and"] + clause_en(b)
                de = main_de(a) + ["und"] + main_de(b)
            else:
                en = with_comma(clause_en(a)) + ["but"] + clause_en(b)
                de = with_comma(main_de(a)) + ["aber"] + main_de(b)
        elif t in ("question", "wh"):
            cl = self.clause(question=True)
            if cl.tense == "past":
                cl.tense = "perf"
            end = "?"
            if t == "wh":
                wh = self.choice(_WH)
                if wh[0] == "when":
                    cl.time = None
                en, de = question_en(cl, wh[0]), question_de(cl, wh[1])
            else:
                en, de = question_en(cl), question_de(cl)
        elif t == "imperative":
            en, de, end = self._imperative()
        elif t == "fragment":
            np = self.noun_np(gen_ok=False)
            if np.det not in ("zero", "our", "your", "the") or np.poss is not None:
                np.det, np.poss = ("zero" if np.plural or np.noun.mass else "your"), None
            if np.adj is None and self.r() < 0.6:
                np.adj = self.choice(self.t.adjs)
            en, de = np_en(np), np_de(np, NOM)
            if self.r() < 0.4:
                pp = self.pp()
                en, de = en + pp_en(pp), de + pp_de(pp)
            end = ""
        else:  # quotes
            return self._quote(t == "quote_pre")
        if self.f.opener and t in ("main", "sub_trail", "coord") and self.r() < self.f.opener:
            o_en, o_de = self.choice(_OPENERS)
            en, de = o_en + en, o_de + de
        return _finish(en, end), _finish(de, end)

    def _imperative(self) -> tuple[list[str], list[str], str]:
        v, frame = self.choice(self.t.imperative)
        cl = Clause(NP(pron="you"), v, frame, "pres")
        cl.acc = self.object_np() if self.r() < 0.9 else NP(pron=self.choice(("i", "we")))
        if cl.acc.pron == "you":
            cl.acc = NP(pron="we")
        if self.r() < 0.25:
            cl.time = self.choice(((["now"], ["jetzt"]), (["today"], ["heute"])))
        if self.r() < 0.2:
            cl.pps = (self.pp(),)
        please = self.r() < 0.5
        if self.r() < 0.1:
            cl.neg = True
            en = (["please"] if please else []) + (["don't"] if self.r() < 0.5 else ["do", "not"])
            en += [v.en[0]] + rest_en(cl, True)
        else:
            en = imperative_en(cl, please)
        return en, imperative_de(cl, please), ("!" if self.r() < 0.3 else ".")

    def _quote(self, before: bool) -> tuple[str, str]:
        x = self.r()
        if x < 0.3:
            speaker = NP(name=self.choice(LEXICON.persons))
        elif x < 0.4:
            speaker = NP(name=self.choice(LEXICON.titles))
        else:
            speaker = self.noun_np(noun=self.choice(self.t.speakers), gen_ok=False)
            speaker.det, speaker.poss, speaker.num = "the", None, None
        say = _SAY
        tense = "past" if self.r() < 0.5 else "pres"
        cl = Clause(speaker, say, "S", tense)
        en_say = en_chain(cl)
        de_say, _, _ = de_verb(cl)
        inner = self.clause(1)
        q_en, q_de = _finish(clause_en(inner), ""), _finish(main_de(inner), "")
        if before:  # The minister says: "The plan is important."
            en = np_en(speaker) + [en_say[-1] + ":", f'"{q_en}."']
            de = np_de(speaker, NOM) + [de_say + ":", f"„{q_de}.“"]
            return _finish(en, ""), _finish(de, "")
        # "The plan is important," the minister says.
        en = [f'"{q_en},"'] + np_en(speaker) + en_say
        de = [f"„{q_de}“,", de_say] + np_de(speaker, NOM)
        return _finish(en, "."), _finish(de, ".")


_SAY = next(v for v in LEXICON.verbs if v.inf == "sagen")


def _finish(words: list[str], end: str) -> str:
    """Join words, attach the comma tokens, capitalise the first letter, add ``end``."""
    s = " ".join(words).replace(" ,", ",") + end
    return s[0].upper() + s[1:] if s[0] != '"' else s[:1] + s[1].upper() + s[2:]
