"""The demo language's lexicon: word classes, German noun forms, compounds, and the lemma
tables of ``lexicon.txt`` (package data), parsed once at import into :data:`LEXICON`.

The tables are data, not code: edit ``lexicon.txt`` to change a word (its header says how).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import as_file, files

from aiayn.errors import DataError
from aiayn.fsio import read_lines

LEXICON_FILE = "lexicon.txt"  # next to this module; pyproject.toml ships it as package data

# ============================================================================ morphology

NOM, ACC, DAT, GEN = range(4)
M, F, N, PL = range(4)
_GENDER = {"m": M, "f": F, "n": N}


@dataclass(frozen=True, slots=True)
class Noun:
    """A noun lemma: English singular/plural, German forms ``forms[plural][case]``."""

    lemma: str
    en: tuple[str, str | None]
    forms: tuple[tuple[str, str, str, str], tuple[str, str, str, str] | None]
    gender: int
    domains: frozenset[str]
    kind: str = "noun"  # noun, closed, hyphen, unit, month, weekday
    mass: bool = False


def _noun_forms(
    sg: str, pl: str | None, gender: int, flags: dict[str, str]
) -> tuple[tuple[str, str, str, str], tuple[str, str, str, str] | None]:
    if "w" in flags or "wn" in flags:  # weak masculine: der Präsident, den Präsidenten
        obl = sg + ("n" if "wn" in flags or sg.endswith("e") else "en")
        sg_forms = (sg, obl, obl, obl)
    elif gender == F:
        sg_forms = (sg, sg, sg, sg)
    else:
        gen = flags.get("g") or (
            sg + "es" if sg.endswith(("s", "ß", "x", "z", "sch")) else sg + "s"
        )
        sg_forms = (sg, sg, sg, gen)
    if pl is None:
        return sg_forms, None
    dat = flags.get("d") or (pl if "u" in flags or pl.endswith(("n", "s")) else pl + "n")
    return sg_forms, (pl, pl, dat, pl)


def _compound(
    noun: Noun, en_prefix: str, de_prefix: str, hyphen: bool, lemma: str | None = None
) -> Noun:
    """``de_prefix`` + head: ``Regierungs`` + ``Plan`` -> ``Regierungsplan``; ``EU-Kommission``."""

    def join(w: str) -> str:
        return f"{de_prefix}-{w}" if hyphen else de_prefix + w[0].lower() + w[1:]

    sg = tuple(join(w) for w in noun.forms[0])
    pl = tuple(join(w) for w in noun.forms[1]) if noun.forms[1] else None
    en_pl = f"{en_prefix} {noun.en[1]}" if noun.en[1] else None
    return Noun(
        lemma or f"{en_prefix} {noun.lemma}",
        (f"{en_prefix} {noun.en[0]}", en_pl),
        (sg, pl),  # type: ignore[arg-type]
        noun.gender,
        noun.domains,
        "hyphen" if hyphen else "closed",
        noun.mass,
    )


def _parse_nouns(rows: list[list[str]], kind: str = "noun") -> dict[str, Noun]:
    out = {}
    for row in rows:
        en_sg, en_pl, g, de_sg, de_pl, domains = row[:6]
        flags = {}
        for f in row[6:]:
            for item in f.split():
                k, _, v = item.partition("=")
                flags[k] = v
        mass = en_pl == "-"
        gender = _GENDER[g]
        forms = _noun_forms(de_sg, None if mass else de_pl, gender, flags)
        out[en_sg] = Noun(
            en_sg, (en_sg, None if mass else en_pl), forms, gender, frozenset(domains.split()),
            kind, mass,
        )  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class Adjective:
    """An adjective: English form, German predicative form and attributive stem."""

    en: str
    de: str
    attr: str
    domains: frozenset[str]
    adverb: str | None = None  # English manner adverb (German uses the bare adjective)


@dataclass(frozen=True, slots=True, eq=False)  # identity: clause.verb == "be" stays cheap
class Verb:
    """A verb with its English forms, German forms and argument frames."""

    en: tuple[str, str, str]  # base, 3sg, past participle
    inf: str  # German infinitive without the separable prefix
    prefix: str  # separable prefix ("an" for "ankündigen") or ""
    de3: str  # 3rd singular present (without prefix)
    de1: str  # 1st singular present (without prefix)
    part: str  # past participle (with prefix)
    aux: str  # "h" (haben) or "s" (sein)
    frames: tuple[str, ...]
    domains: frozenset[str]

    @property
    def full_inf(self) -> str:
        return self.prefix + self.inf

    def present(self, person: str) -> str:
        """Finite present form (without a separable prefix) for person 1sg, 3sg or pl."""
        return self.de3 if person == "3sg" else self.de1 if person == "1sg" else self.inf


def _first_singular(inf: str) -> str:
    if inf.endswith("eln"):
        return inf[:-3] + "le"
    if inf.endswith("ern"):
        return inf[:-1]
    return inf[:-2] + "e"


def _parse_verbs(rows: list[list[str]]) -> list[Verb]:
    out = []
    for row in rows:
        base, en3, part_en, inf, de3, part, aux, frames, domains = row
        prefix, _, core = inf.rpartition("|")
        de1 = "weiß" if core == "wissen" else _first_singular(core)
        out.append(
            Verb(
                (base, en3, part_en), core, prefix, de3, de1, part, aux, tuple(frames.split()),
                frozenset(domains.split()),
            )  # fmt: skip
        )
    return out


@dataclass(frozen=True, slots=True)
class Name:
    """A person or place name; persons are copied unchanged, places translated."""

    en: str
    de: tuple[str, str, str, str]  # by case (titles inflect: Herr, Herrn)
    kind: str  # person, place, title
    possessive: bool = False  # may take English 's / German -s


class Lexicon:
    """All lemmas of the mini-language, from the tables of ``lexicon.txt``."""

    def __init__(self, tables: dict[str, list[list[str]]]) -> None:
        self.nouns = _parse_nouns(tables["nouns"])
        self.units = _parse_nouns(tables["units"], "unit")
        heads = {**self.nouns, **_parse_nouns(tables["head_only"])}
        self.compounds: dict[str, Noun] = {}
        for table, hyphen in (("closed", False), ("hyphen", True)):
            for en, de, head_list in tables[table]:
                for h in head_list.split(","):
                    c = _compound(heads[h], en, de, hyphen)
                    self.compounds[c.lemma] = c
        self.months = [
            Noun(en, (en, None), ((de,) * 4, None), M, frozenset({"news"}), "month")
            for en, de in tables["months"]
        ]
        self.weekdays = [
            Noun(en, (en, None), ((de,) * 4, None), M, frozenset({"news"}), "weekday")
            for en, de in tables["weekdays"]
        ]
        self.adjectives = []
        for row in tables["adjectives"]:
            en, de, domains = row[:3]
            de, _, attr = de.partition("/")
            adv = row[3] if len(row) > 3 else None
            self.adjectives.append(Adjective(en, de, attr or de, frozenset(domains.split()), adv))
        self.verbs = _parse_verbs(tables["verbs"])
        self.time_adverbs = [tuple(r) for r in tables["time_adverbs"]]
        self.freq_adverbs = [tuple(r) for r in tables["freq_adverbs"]]
        self.connectors = [tuple(r) for r in tables["connectors"]]
        self.persons = [
            Name(p, (p,) * 4, "person", not p.endswith(("s", "x", "z")))
            for (p,) in tables["persons"]
        ]
        self.places = [Name(en, (de,) * 4, "place") for en, de in tables["places"]]
        surnames = [s for (s,) in tables["surnames"]]
        self.titles = [
            Name(f"Mr {s}", (f"Herr {s}",) + (f"Herrn {s}",) * 3, "title") for s in surnames
        ] + [Name(f"Mrs {s}", (f"Frau {s}",) * 4, "title") for s in surnames]
        self.number_words = [tuple(r) for r in tables["number_words"]]

    def stats(self) -> dict[str, int]:
        """Lemma counts per category (compounds and titles are combinations, not lemmas)."""
        counts = {
            "nouns": len(self.nouns) + len(self.units),
            "months_weekdays": len(self.months) + len(self.weekdays),
            "adjectives": len(self.adjectives),
            "verbs": len({(v.en[0], v.full_inf) for v in self.verbs}),
            "adverbs": len(self.time_adverbs)
            + len(self.freq_adverbs)
            + len(self.connectors)
            + sum(a.adverb is not None for a in self.adjectives),
            "names": len(self.persons) + len(self.places),
            "numbers": len(self.number_words),
        }
        counts["lemmas"] = sum(counts.values())
        counts["compounds"] = len(self.compounds)
        return counts


# ============================================================================ lexicon.txt

# Fields per row of each table of lexicon.txt (fewest, most), in the file's order.
TABLE_FIELDS = {
    "nouns": (6, 7), "units": (6, 7), "months": (2, 2), "weekdays": (2, 2), "closed": (3, 3),
    "hyphen": (3, 3), "head_only": (6, 7), "adjectives": (3, 4), "verbs": (9, 9),
    "time_adverbs": (3, 3), "freq_adverbs": (2, 2), "connectors": (2, 2), "persons": (1, 1),
    "surnames": (1, 1), "places": (2, 2), "number_words": (2, 2),
}  # fmt: skip


def parse_tables(lines: list[str], name: str) -> dict[str, list[list[str]]]:
    """The tables of ``lines`` (the text of ``lexicon.txt``, named ``name`` in errors):
    ``{table: [row fields]}``, rows in file order. A DataError names the line of a header
    that is not one of :data:`TABLE_FIELDS` (or repeats one), of a row outside a table or
    with the wrong number of fields, or of stray whitespace; and any table that is missing.
    """
    tables: dict[str, list[list[str]]] = {}
    table, rows = "", None
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        where = f"{name}:{n}"
        if line != line.strip():
            raise DataError(f"{where}: leading or trailing whitespace (or \\r); remove it")
        if line.startswith("["):
            table = line[1:-1]
            if not line.endswith("]") or table not in TABLE_FIELDS or table in tables:
                raise DataError(
                    f"{where}: {line!r} is not a new table header; the tables are "
                    + ", ".join(f"[{t}]" for t in TABLE_FIELDS)
                )
            rows = tables[table] = []
            continue
        if rows is None:
            raise DataError(f"{where}: a row before the first [table] header")
        fields = line.split(";")
        lo, hi = TABLE_FIELDS[table]
        if not lo <= len(fields) <= hi:
            want = str(lo) if lo == hi else f"{lo} or {hi}"
            raise DataError(
                f"{where}: [{table}] rows have {want} fields separated by ';'; got {len(fields)}"
            )
        rows.append(fields)
    missing = [t for t in TABLE_FIELDS if t not in tables]
    if missing:
        raise DataError(f"{name}: missing tables " + ", ".join(f"[{t}]" for t in missing))
    return tables


def read_tables() -> dict[str, list[list[str]]]:
    """The tables of the installed ``lexicon.txt`` (see :func:`parse_tables`)."""
    with as_file(files(__package__) / LEXICON_FILE) as path:
        return parse_tables(read_lines(path), str(path))


LEXICON = Lexicon(read_tables())


def lexicon_stats() -> dict[str, int]:
    """Lemma counts per category of the demo language (see :meth:`Lexicon.stats`)."""
    return LEXICON.stats()
