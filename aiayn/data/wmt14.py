"""What WMT14 English-German consists of: archives, members, checksums and line counts.

The registry is plain data; :mod:`aiayn.data.download` fetches and checks against it. Every
archive is named by its path relative to :data:`STATMT` (``http://www.statmt.org``), so a
mirror (``data.mirror``) only has to serve the same relative paths. The archive cache
(``data.cache_dir``) uses the same relative paths, so a filled cache is itself a valid
``file://`` mirror.

Members are the paths inside the archives; extracted as they are, they form the *official
extracted layout* that the demo generator writes too (see docs/design.md)::

    training/europarl-v7.de-en.{de,en}
    commoncrawl.de-en.{de,en}
    training/news-commentary-v9.de-en.{de,en}
    dev/newstest2013.{en,de}
    test-full/newstest2014-deen-src.en.sgm   test-full/newstest2014-deen-ref.de.sgm
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

STATMT = "http://www.statmt.org"


@dataclass(frozen=True)
class Archive:
    """One downloadable archive.

    path: relative to :data:`STATMT` (and to a mirror, and to the cache folder).
    size: bytes, if known (progress bar, and a clearer checksum error).
    sha256 / md5: the expected digest; an archive with neither gets its sha256 recorded in
    the cache on first download and checked against that record afterwards.
    """

    path: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None

    @property
    def url(self) -> str:
        """The official URL."""
        return f"{STATMT}/{self.path}"

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Corpus:
    """A parallel training corpus: two line-aligned plain-text members of one archive."""

    name: str
    archive: Archive | None  # None: not from an archive (data.source: hf)
    en: str  # member path of the English side
    de: str  # member path of the German side
    lines: int | None  # expected line count (per side) of the official release

    def member(self, lang: str) -> str:
        return {"en": self.en, "de": self.de}[lang]


@dataclass(frozen=True)
class EvalSet:
    """A dev or test set: plain text (one segment per line) or WMT SGML (one file per side)."""

    name: str
    archive: Archive | None  # None: not from an archive (data.source: hf)
    en: str
    de: str
    segments: int | None  # expected segment count
    sgml: bool = False

    def member(self, lang: str) -> str:
        return {"en": self.en, "de": self.de}[lang]


@dataclass(frozen=True)
class Registry:
    """Training corpora (in canonical order), the dev set and the test set."""

    corpora: dict[str, Corpus] = field(hash=False)
    dev: EvalSet
    test: EvalSet

    def select(self, names: Iterable[str]) -> list[Corpus]:
        """The named corpora in registry order (so the same selection gives the same data)."""
        wanted = set(names)
        unknown = wanted - set(self.corpora)
        if unknown:
            raise KeyError(f"unknown corpora: {', '.join(sorted(unknown))}")
        return [c for n, c in self.corpora.items() if n in wanted]

    def archives(self, names: Iterable[str]) -> list[Archive]:
        """Distinct archives needed for the named corpora plus dev and test, in order."""
        out: list[Archive] = []
        for a in [c.archive for c in self.select(names)] + [self.dev.archive, self.test.archive]:
            if a not in out:
                out.append(a)
        return out

    def members(self, archive: Archive, names: Iterable[str]) -> list[str]:
        """The members of ``archive`` that the named corpora, dev and test need."""
        items: list[Corpus | EvalSet] = [*self.select(names), self.dev, self.test]
        return [m for it in items if it.archive == archive for m in (it.en, it.de)]


EUROPARL = Archive(
    "wmt13/training-parallel-europarl-v7.tgz",
    size=657_632_379,
    sha256="0224c7c710c8a063dfd893b0cc0830202d61f4c75c17eb8e31836103d27d96e7",
)
COMMONCRAWL = Archive(
    "wmt13/training-parallel-commoncrawl.tgz",
    size=918_311_367,
    sha256="c7a74e2ea01ac6c920123108627e35278d4ccb5701e15428ffa34de86fa3a9e5",
)
NEWS_COMMENTARY = Archive(
    "wmt14/training-parallel-nc-v9.tgz",
    size=80_418_416,
    sha256="cb8953f292298e6877ae433c98912b927cb0766b303f4540512ddd286c748485",
)
TEST_FULL = Archive("wmt14/test-full.tgz", md5="a8cd784e006feb32ac6f3d9ec7eb389a")
DEV = Archive("wmt14/dev.tgz")  # no published digest: recorded on first download

WMT14 = Registry(
    corpora={
        "europarl-v7": Corpus(
            "europarl-v7",
            EUROPARL,
            en="training/europarl-v7.de-en.en",
            de="training/europarl-v7.de-en.de",
            lines=1_920_209,
        ),
        "commoncrawl": Corpus(
            "commoncrawl",
            COMMONCRAWL,
            en="commoncrawl.de-en.en",
            de="commoncrawl.de-en.de",
            lines=2_399_123,
        ),
        "news-commentary-v9": Corpus(
            "news-commentary-v9",
            NEWS_COMMENTARY,
            en="training/news-commentary-v9.de-en.en",
            de="training/news-commentary-v9.de-en.de",
            lines=201_288,
        ),
    },
    dev=EvalSet(
        "newstest2013", DEV, en="dev/newstest2013.en", de="dev/newstest2013.de", segments=3000
    ),
    test=EvalSet(
        "newstest2014",
        TEST_FULL,
        en="test-full/newstest2014-deen-src.en.sgm",
        de="test-full/newstest2014-deen-ref.de.sgm",
        segments=3003,
        sgml=True,
    ),
)


def mirror_url(archive: Archive, mirror: str) -> str:
    """The archive's URL on ``mirror`` (which replaces the ``http://www.statmt.org`` prefix)."""
    return f"{mirror.rstrip('/')}/{archive.path}"
