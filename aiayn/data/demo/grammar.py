"""The demo language's grammar: closed-class words (pronouns, auxiliaries and modals,
determiners, adjective endings, prepositions), the phrase and clause structures (:class:`NP`,
:class:`PP`, :class:`Clause`) and their English and German word order.

German: article and adjective agreement by gender, number and case, prepositions that govern
cases and contract (``im``, ``zum``), ``nicht ... ein`` -> ``kein``, verb-second main clauses,
verb brackets and verb-final subordinate clauses. English: do-support, auxiliary inversion
and contractions. Each function turns one structure into a list of words; the sampler
(:mod:`aiayn.data.demo.sampler`) chooses the structures.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiayn.data.demo.lexicon import ACC, DAT, GEN, LEXICON, NOM, PL, Adjective, Name, Noun, Verb

# ============================================================================ closed classes

# Finite forms of the auxiliaries and modals: (1sg, 3sg, pl); English: (base/1sg, 3sg).
_HABEN = {"1sg": "habe", "3sg": "hat", "pl": "haben"}
_SEIN = {"1sg": "bin", "3sg": "ist", "pl": "sind"}
_WERDEN = {"1sg": "werde", "3sg": "wird", "pl": "werden"}
MODALS = {
    # key: (English words positive, English negative, German finite forms, German when negated)
    "can": (("can",), ("cannot",), {"1sg": "kann", "3sg": "kann", "pl": "können"}, None),
    "must": (("must",), ("must", "not"), {"1sg": "muss", "3sg": "muss", "pl": "müssen"},
             {"1sg": "darf", "3sg": "darf", "pl": "dürfen"}),
    "should": (("should",), ("should", "not"), {"1sg": "soll", "3sg": "soll", "pl": "sollen"},
               None),
    "want": (("want", "to"), ("want", "to"), {"1sg": "will", "3sg": "will", "pl": "wollen"}, None),
    "would": (("would", "like", "to"), ("would", "not", "like", "to"),
              {"1sg": "möchte", "3sg": "möchte", "pl": "möchten"}, None),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Pronoun:
    en_subj: str
    en_obj: str
    de: tuple[str, str, str, str]  # nom acc dat gen(unused)
    person: str


PRONOUNS = {
    "i": Pronoun("I", "me", ("ich", "mich", "mir", "meiner"), "1sg"),
    "you": Pronoun("you", "you", ("Sie", "Sie", "Ihnen", "Ihrer"), "pl"),
    "he": Pronoun("he", "him", ("er", "ihn", "ihm", "seiner"), "3sg"),
    "she": Pronoun("she", "her", ("sie", "sie", "ihr", "ihrer"), "3sg"),
    "it": Pronoun("it", "it", ("es", "es", "ihm", "seiner"), "3sg"),
    "we": Pronoun("we", "us", ("wir", "uns", "uns", "unser"), "pl"),
    "they": Pronoun("they", "them", ("sie", "sie", "ihnen", "ihrer"), "pl"),
}

_GEBEN = next(v for v in LEXICON.verbs if v.inf == "geben")  # es gibt


# DETS[key] = (English singular, English plural, German table [case][gender/plural],
#              adjective declension after it: "weak", "mixed" or "strong")
_DEF = (("der", "die", "das", "die"), ("den", "die", "das", "die"),
        ("dem", "der", "dem", "den"), ("des", "der", "des", "der"))  # fmt: skip


def _ein_type(stem: str) -> tuple[tuple[str, ...], ...]:
    return (
        (stem, stem + "e", stem, stem + "e"),
        (stem + "en", stem + "e", stem, stem + "e"),
        (stem + "em", stem + "er", stem + "em", stem + "en"),
        (stem + "es", stem + "er", stem + "es", stem + "er"),
    )


def _dies_type(stem: str) -> tuple[tuple[str, ...], ...]:
    return (
        (stem + "er", stem + "e", stem + "es", stem + "e"),
        (stem + "en", stem + "e", stem + "es", stem + "e"),
        (stem + "em", stem + "er", stem + "em", stem + "en"),
        (stem + "es", stem + "er", stem + "es", stem + "er"),
    )


_NONE4 = (("",) * 4,) * 4
DETS: dict[str, tuple[str, str | None, tuple[tuple[str, ...], ...], str]] = {
    "the": ("the", "the", _DEF, "weak"),
    "a": ("a", None, _ein_type("ein"), "mixed"),
    "no": ("no", "no", _ein_type("kein"), "mixed"),
    "this": ("this", "these", _dies_type("dies"), "weak"),
    "every": ("every", None, _dies_type("jed"), "weak"),
    "my": ("my", "my", _ein_type("mein"), "mixed"),
    "our": ("our", "our", _ein_type("unser"), "mixed"),
    "your": ("your", "your", _ein_type("Ihr"), "mixed"),
    "his": ("his", "his", _ein_type("sein"), "mixed"),
    "her": ("her", "her", _ein_type("ihr"), "mixed"),
    "their": ("their", "their", _ein_type("ihr"), "mixed"),
    "many": (None, "many", _dies_type("viel"), "strong"),  # type: ignore[dict-item]
    "some": (None, "some", _dies_type("einig"), "strong"),  # type: ignore[dict-item]
    "zero": ("", "", _NONE4, "strong"),
}

# Adjective endings [declension][case][gender/plural].
ADJ_ENDINGS = {
    "weak": (("e", "e", "e", "en"), ("en", "e", "e", "en"), ("en",) * 4, ("en",) * 4),
    "mixed": (("er", "e", "es", "en"), ("en", "e", "es", "en"), ("en",) * 4, ("en",) * 4),
    "strong": (("er", "e", "es", "e"), ("en", "e", "es", "e"), ("em", "er", "em", "en"),
               ("en", "er", "en", "er")),
}  # fmt: skip

# Prepositions: key -> (English, German, case). Place names take "nach"/"aus" for to/from.
PREPS = {
    "with": ("with", "mit", DAT),
    "for": ("for", "für", ACC),
    "against": ("against", "gegen", ACC),
    "without": ("without", "ohne", ACC),
    "from": ("from", "von", DAT),
    "after": ("after", "nach", DAT),
    "during": ("during", "während", GEN),
    "through": ("through", "durch", ACC),
    "about": ("about", "über", ACC),
    "in": ("in", "in", DAT),
    "into": ("into", "in", ACC),
    "at": ("at", "bei", DAT),
    "on": ("on", "auf", DAT),
    "to": ("to", "zu", DAT),
    "since": ("since", "seit", DAT),
}
_PLACE_PREP = {"to": "nach", "from": "aus"}
_CONTRACT = {
    ("in", "dem"): "im", ("in", "das"): "ins", ("zu", "dem"): "zum", ("zu", "der"): "zur",
    ("von", "dem"): "vom", ("bei", "dem"): "beim", ("an", "dem"): "am", ("an", "das"): "ans",
}  # fmt: skip
_CASE_CODE = {"a": ACC, "d": DAT, "g": GEN}  # of a verb frame P:en:de:case


# ============================================================================ grammar


class NP:
    """A noun phrase: a pronoun, a name, or determiner + [number] + [adjective] + noun.

    ``gen`` is an "of" complement (German genitive), ``poss`` a name with English ``'s``
    (German ``Merkels``), ``num`` a (English, German) quantity such as ("12,500", "12.500").
    """

    __slots__ = ("pron", "name", "noun", "det", "adj", "num", "plural", "gen", "poss")

    def __init__(
        self,
        noun: Noun | None = None,
        det: str = "the",
        *,
        adj: Adjective | None = None,
        num: tuple[str, str] | None = None,
        plural: bool = False,
        gen: NP | None = None,
        poss: Name | None = None,
        pron: str | None = None,
        name: Name | None = None,
    ) -> None:
        self.noun, self.det, self.adj, self.num = noun, det, adj, num
        self.plural, self.gen, self.poss, self.pron, self.name = plural, gen, poss, pron, name

    @property
    def person(self) -> str:
        if self.pron is not None:
            return PRONOUNS[self.pron].person
        return "pl" if self.plural else "3sg"

    @property
    def indefinite(self) -> bool:
        """True for "a X" and bare plurals/mass nouns, which German negates with "kein"."""
        n = self.noun
        if n is None or self.poss is not None or self.num is not None:
            return False
        return self.det == "a" or (self.det == "zero" and not n.mass)


def _a_or_an(word: str) -> str:
    w = word.split()[0]
    if len(w) >= 2 and (w.isupper() or any(c.isdigit() for c in w)):  # acronyms: an EU, a US
        return "an" if w[0] in "AEFHILMNORSX" else "a"
    lw = w.lower()
    if lw.startswith(("eu", "use", "usu", "uni", "one")):
        return "a"
    return "an" if lw[0] in "aeiou" else "a"


def np_en(np: NP, obj: bool = False) -> list[str]:
    """English words of ``np`` (``obj``: object form of pronouns)."""
    if np.pron is not None:
        p = PRONOUNS[np.pron]
        return [p.en_obj if obj else p.en_subj]
    if np.name is not None:
        return [np.name.en]
    words: list[str] = []
    if np.poss is not None:
        words.append(np.poss.en + "'s")
    elif np.det != "zero":
        d = DETS[np.det]
        words.append(d[1] if np.plural else d[0])  # type: ignore[arg-type]
    if np.num is not None:
        words.append(np.num[0])
    if np.adj is not None:
        words.append(np.adj.en)
    words.append(np.noun.en[1] if np.plural else np.noun.en[0])  # type: ignore[union-attr]
    if np.det == "a" and np.poss is None:
        words[0] = _a_or_an(words[1])
    if np.gen is not None:
        words.append("of")
        words += np_en(np.gen, True)
    return words


def np_de(np: NP, case: int) -> list[str]:
    """German words of ``np`` in ``case`` (NOM, ACC, DAT, GEN), with agreement."""
    if np.pron is not None:
        return [PRONOUNS[np.pron].de[case]]
    if np.name is not None:
        return [np.name.de[case]]
    noun = np.noun
    assert noun is not None
    gn = PL if np.plural else noun.gender
    words: list[str] = []
    if np.poss is not None:
        words.append(np.poss.de[0] + "s")
        decl = "strong"
    else:
        det = "the" if np.det == "zero" and noun.mass else np.det
        _, _, table, decl = DETS[det]
        art = table[case][gn]
        if art:
            words.append(art)
    if np.num is not None:
        words.append(np.num[1])
    if np.adj is not None:
        words.append(np.adj.attr + ADJ_ENDINGS[decl][case][gn])
    forms = noun.forms[1] if np.plural else noun.forms[0]
    words.append(forms[case])  # type: ignore[index]
    if np.gen is not None:
        words += np_de(np.gen, GEN)
    return words


class PP:
    """A prepositional phrase: ``PREPS`` key + noun phrase."""

    __slots__ = ("prep", "np")

    def __init__(self, prep: str, np: NP) -> None:
        self.prep, self.np = prep, np


def pp_en(pp: PP) -> list[str]:
    return [PREPS[pp.prep][0]] + np_en(pp.np, True)


def pp_de(pp: PP) -> list[str]:
    _, de, case = PREPS[pp.prep]
    if pp.np.name is not None and pp.np.name.kind == "place":
        de = _PLACE_PREP.get(pp.prep, de)
    words = np_de(pp.np, case)
    if pp.np.det == "the" or (pp.np.det == "zero" and pp.np.noun is not None and pp.np.noun.mass):
        short = _CONTRACT.get((de, words[0])) if pp.np.poss is None and pp.np.noun else None
        if short:
            return [short] + words[1:]
    return [de] + words


def prep_object(en: str, de: str, case: str, np: NP) -> tuple[list[str], list[str]]:
    """A verb's prepositional object (``Clause.vpp``) for the frame ``P:en:de:case``:
    (English words, German words), the German contracted (an dem -> am)."""
    words = np_de(np, _CASE_CODE[case])
    short = _CONTRACT.get((de, words[0])) if np.det == "the" and np.noun else None
    return [en] + np_en(np, True), [short] + words[1:] if short else [de] + words


class Clause:
    """One clause before it is put into English or German word order.

    ``verb`` is a :class:`Verb`, ``"be"`` (copula, with ``pred``) or ``"exist"`` (there is
    = es gibt, object in ``acc``). ``tense``: pres, perf, fut, past (only "said") or a
    ``MODALS`` key. ``vpp`` is the verb's prepositional complement as (English words,
    German words). ``time``/``freq``/``manner``/``connector`` are (English, German) pairs;
    ``front`` chooses what comes first in a main clause: "subj", "time", "connector" or
    "sub" (the adjunct subordinate clause ``sub`` = (conjunction key, Clause)).
    ``comp`` is a that/whether complement (kind, Clause).
    """

    neg = False
    dat: NP | None = None
    acc: NP | None = None
    vpp: tuple[list[str], list[str]] | None = None
    pps: tuple[PP, ...] = ()
    time: tuple[list[str], list[str]] | None = None
    freq: tuple[str, str] | None = None
    manner: tuple[str, str] | None = None
    pred: tuple[list[str], list[str]] | None = None
    comp: tuple[str, Clause] | None = None
    sub: tuple[str, Clause] | None = None
    front = "subj"
    connector: tuple[str, str] | None = None
    dat_to = False  # English "give X to Y" instead of "give Y X"
    contract = False  # English n't / 's / 'm
    that = True  # English keeps "that" before a complement clause

    def __init__(
        self, subj: NP, verb: Verb | str, frame: str = "I", tense: str = "pres", **kw
    ) -> None:
        self.subj, self.verb, self.frame, self.tense = subj, verb, frame, tense
        for k, v in kw.items():
            if not hasattr(Clause, k):
                raise TypeError(f"unknown clause field {k!r}")
            setattr(self, k, v)


SUBORDINATORS = {
    "because": ("because", "weil"),
    "although": ("although", "obwohl"),
    "if": ("if", "wenn"),
    "while": ("while", "während"),
    "before": ("before", "bevor"),
    "as soon as": ("as soon as", "sobald"),
}

# ---------------------------------------------------------------------------- German


def de_verb(cl: Clause) -> tuple[str, list[str], list[str]]:
    """(finite verb for V2, right-bracket words, verb-final cluster for a subordinate clause)."""
    person = "3sg" if cl.verb == "exist" else cl.subj.person
    v = cl.verb
    if v == "be":
        inf, prefix, part, aux, fin_pres = "sein", "", "gewesen", "s", _SEIN[person]
    else:
        if v == "exist":
            v = _GEBEN
        inf, prefix, part, aux = v.inf, v.prefix, v.part, v.aux
        fin_pres = v.present(person)
    t = cl.tense
    if t == "pres":
        return fin_pres, [prefix] if prefix else [], [prefix + fin_pres]
    if t == "perf":
        fin = (_SEIN if aux == "s" else _HABEN)[person]
        return fin, [part], [part, fin]
    if t == "past":  # only "said" -> "sagte"
        fin = "sagten" if person == "pl" else "sagte"
        return fin, [], [fin]
    if t == "fut":
        fin = _WERDEN[person]
    else:
        _, _, forms, neg_forms = MODALS[t]
        fin = (neg_forms if cl.neg and neg_forms else forms)[person]
    return fin, [prefix + inf], [prefix + inf, fin]


def _kein(np: NP, case: int) -> list[str]:
    """``np`` with "kein" for "a"/no article: nicht + ein Plan -> kein Plan."""
    return np_de(NP(np.noun, "no", adj=np.adj, plural=np.plural, gen=np.gen), case)


def _middle_de(cl: Clause, with_time: bool) -> list[str]:
    """The German middle field: pronoun objects, time, frequency, dative, accusative,
    nicht, prepositional complement, adjuncts, manner, predicate."""
    words: list[str] = []
    neg = cl.neg
    acc, dat = cl.acc, cl.dat
    if acc is not None and acc.pron is not None:
        words += np_de(acc, ACC)
    if dat is not None and dat.pron is not None:
        words += np_de(dat, DAT)
    if with_time and cl.time is not None:
        words += cl.time[1]
    if cl.freq is not None:
        words.append(cl.freq[1])
    if dat is not None and dat.pron is None:
        words += np_de(dat, DAT)
    if acc is not None and acc.pron is None:
        if neg and acc.indefinite and acc.num is None:
            words += _kein(acc, ACC)
            neg = False
        else:
            words += np_de(acc, ACC)
    if neg:
        words.append("nicht")
    if cl.vpp is not None:
        words += cl.vpp[1]
    for pp in cl.pps:
        words += pp_de(pp)
    if cl.manner is not None:
        words.append(cl.manner[1])
    if cl.pred is not None:
        words += cl.pred[1]
    return words


def _subj_de(cl: Clause) -> list[str]:
    return ["es"] if cl.verb == "exist" else np_de(cl.subj, NOM)


def _trail_de(cl: Clause) -> list[str]:
    words: list[str] = []
    if cl.comp is not None:
        kind, c = cl.comp
        words += sub_de(c, "dass" if kind == "that" else "ob")
    if cl.sub is not None and cl.front != "sub":
        conj, c = cl.sub
        words += sub_de(c, SUBORDINATORS[conj][1])
    return words


def with_comma(words: list[str]) -> list[str]:
    words[-1] += ","
    return words


def main_de(cl: Clause) -> list[str]:
    """A German main clause: verb second, non-finite verbs at the end of the bracket."""
    fin, bracket, _ = de_verb(cl)
    front = cl.front
    if front == "subj":
        words = _subj_de(cl) + [fin]
    else:
        if front == "time":
            first = list(cl.time[1])
        elif front == "connector":
            first = [cl.connector[1]]
        else:  # fronted subordinate clause: "Wenn ..., tritt der Minister zurück"
            conj, c = cl.sub
            first = with_comma(sub_de(c, SUBORDINATORS[conj][1])[1:])
        words = first + [fin] + _subj_de(cl)
    words += _middle_de(cl, front != "time")
    words += bracket
    return words + _trail_de(cl)


def sub_de(cl: Clause, conj: str) -> list[str]:
    """``, conj`` + a German subordinate clause: verb(s) last, finite verb very last."""
    _, _, cluster = de_verb(cl)
    words = [",", conj] + _subj_de(cl) + _middle_de(cl, True) + cluster + _trail_de(cl)
    return words


def question_de(cl: Clause, wh: str | None = None) -> list[str]:
    """A German question: [wh-word] finite verb, subject, middle field, bracket."""
    fin, bracket, _ = de_verb(cl)
    words = ([wh] if wh else []) + [fin] + _subj_de(cl) + _middle_de(cl, True) + bracket
    return words


def imperative_de(cl: Clause, please: bool) -> list[str]:
    """A polite German imperative: [Bitte] verb Sie ... [prefix]."""
    v = cl.verb
    assert isinstance(v, Verb)
    words = (["bitte"] if please else []) + [v.inf, "Sie"] + _middle_de(cl, True)
    return words + ([v.prefix] if v.prefix else [])


# ---------------------------------------------------------------------------- English


def en_chain(cl: Clause) -> list[str]:
    """English auxiliaries + adverb + main verb, e.g. ["does", "not", "support"]."""
    person = cl.acc.person if cl.verb == "exist" else cl.subj.person  # there is/are
    v = cl.verb
    t, neg, freq, c = cl.tense, cl.neg, cl.freq, cl.contract
    f = [freq[0]] if freq is not None else []
    if v in ("be", "exist"):
        if t == "pres":
            be = {"1sg": "am", "3sg": "is", "pl": "are"}[person]
            if neg:
                if c and be != "am":
                    return [be + "n't"] + f
                return [be, "not"] + f
            return [be] + f
        base, part = "be", "been"
    else:
        base, third, part = v.en
        if t == "pres":
            if neg:
                do = "does" if person == "3sg" else "do"
                return ([do + "n't"] if c else [do, "not"]) + f + [base]
            return f + [third if person == "3sg" else base]
    if t == "past":  # only "say" is generated in the past tense
        return f + ["said"]
    if t == "perf":
        have = "has" if person == "3sg" else "have"
        aux = ([have + "n't"] if c else [have, "not"]) if neg else [have]
        return aux + f + [part]
    if t == "fut":
        aux = (["won't"] if c else ["will", "not"]) if neg else ["will"]
        return aux + f + [base]
    if t == "want":
        to = ["wants" if person == "3sg" else "want", "to"]
        if neg:
            do = "does" if person == "3sg" else "do"
            return ([do + "n't"] if c else [do, "not"]) + ["want", "to"] + f + [base]
        return to + f + [base]
    pos, negw, _, _ = MODALS[t]
    if neg:
        if c and t in ("can", "should", "must"):
            aux = [{"can": "can't", "should": "shouldn't", "must": "mustn't"}[t]]
        else:
            aux = list(negw)
    else:
        aux = list(pos)
    return aux + f + [base]


def _subj_en(cl: Clause) -> list[str]:
    return ["there"] if cl.verb == "exist" else np_en(cl.subj)


def _objects_en(cl: Clause) -> list[str]:
    words: list[str] = []
    frame = cl.frame
    if cl.verb == "exist":
        return np_en(cl.acc, True)
    if frame.startswith("A:") or frame.startswith("D:"):
        words.append(frame[2:])  # looks for / agrees with / belongs to
    if cl.dat is not None and cl.acc is not None:
        if cl.dat_to:
            return np_en(cl.acc, True) + ["to"] + np_en(cl.dat, True)
        return np_en(cl.dat, True) + np_en(cl.acc, True)
    if cl.dat is not None:
        words += np_en(cl.dat, True)
    if cl.acc is not None:
        words += np_en(cl.acc, True)
    return words


def rest_en(cl: Clause, with_time: bool) -> list[str]:
    words = _objects_en(cl)
    if cl.vpp is not None:
        words += cl.vpp[0]
    for pp in cl.pps:
        words += pp_en(pp)
    if cl.manner is not None:
        words.append(cl.manner[0])
    if cl.pred is not None:
        words += cl.pred[0]
    if with_time and cl.time is not None:
        words += cl.time[0]
    return words


def _trail_en(cl: Clause) -> list[str]:
    words: list[str] = []
    if cl.comp is not None:
        kind, c = cl.comp
        if kind == "that":
            words += (["that"] if cl.that else []) + clause_en(c)
        else:
            words += ["whether"] + clause_en(c)
    if cl.sub is not None and cl.front != "sub":
        conj, c = cl.sub
        words += [SUBORDINATORS[conj][0]] + clause_en(c)
    return words


def _contract_subject(subj: list[str], chain: list[str], cl: Clause) -> list[str]:
    """English contractions: it's, I'm, we're (only positive present "be")."""
    if cl.contract and not cl.neg and cl.tense == "pres" and cl.verb == "be" and len(subj) == 1:
        short = {("it", "is"): "it's", ("I", "am"): "I'm", ("we", "are"): "we're",
                 ("they", "are"): "they're", ("he", "is"): "he's", ("she", "is"): "she's",
                 ("you", "are"): "you're"}.get((subj[0], chain[0]))  # fmt: skip
        if short:
            return [short] + chain[1:]
    return subj + chain


def clause_en(cl: Clause) -> list[str]:
    """An English declarative clause (main or subordinate: English does not reorder)."""
    front = cl.front
    words: list[str] = []
    if front == "time":
        words += cl.time[0]
    elif front == "connector":
        words += with_comma([cl.connector[0]])
    elif front == "sub":
        conj, c = cl.sub
        words += with_comma([SUBORDINATORS[conj][0]] + clause_en(c))
    words += _contract_subject(_subj_en(cl), en_chain(cl), cl)
    words += rest_en(cl, front != "time")
    return words + _trail_en(cl)


def question_en(cl: Clause, wh: str | None = None) -> list[str]:
    """An English question: do-support or auxiliary inversion."""
    chain = en_chain(cl)
    subj = _subj_en(cl)
    if cl.verb in ("be", "exist") or cl.tense != "pres":
        if cl.tense == "want":  # does he want to ...
            do = "does" if cl.subj.person == "3sg" else "do"
            chain = [do] + subj + ["want", "to"] + chain[2:]
        else:
            chain = [chain[0]] + subj + chain[1:]
    else:
        base = cl.verb.en[0]  # type: ignore[union-attr]
        do = "does" if cl.subj.person == "3sg" else "do"
        f = [cl.freq[0]] if cl.freq is not None else []
        chain = [do] + subj + f + [base]
    return ([wh] if wh else []) + chain + rest_en(cl, True)


def imperative_en(cl: Clause, please: bool) -> list[str]:
    v = cl.verb
    assert isinstance(v, Verb)
    return (["please"] if please else []) + [v.en[0]] + rest_en(cl, True)
