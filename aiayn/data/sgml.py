"""WMT SGML test sets (``newstest2014-deen-src.en.sgm`` and friends): read and write.

The official files hold one ``<seg id="N">text</seg>`` per line inside ``<doc>`` elements
inside a ``<srcset>`` or ``<refset>``; text is entity-escaped. :func:`read_sgml` returns the
segments in file order with entities unescaped and raises :class:`~aiayn.errors.DataError`
naming the file and line of anything malformed; :func:`read_sgml_docs` keeps the documents
and segment ids; :func:`read_parallel_sgml` reads a source and a reference file and checks
that they hold the same documents and segment ids; :func:`write_sgml` writes the layout.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiayn.errors import DataError
from aiayn.fsio import read_lines

_SEG = re.compile(r'^\s*<seg\s+id\s*=\s*"?(\d+)"?\s*>(.*)</seg>\s*$', re.IGNORECASE)
_OPEN_SET = re.compile(r"^\s*<(srcset|refset|tstset)\b[^>]*>\s*$", re.IGNORECASE)
_CLOSE_SET = re.compile(r"^\s*</(srcset|refset|tstset)>\s*$", re.IGNORECASE)
_OPEN_DOC = re.compile(r"^\s*<doc\b[^>]*>\s*$", re.IGNORECASE)
_CLOSE_DOC = re.compile(r"^\s*</doc>\s*$", re.IGNORECASE)
_DOCID = re.compile(r'\bdocid\s*=\s*"([^"]*)"', re.IGNORECASE)
_OTHER = re.compile(r"^\s*(</?p>|</?hl>|<\?xml[^>]*>|<!--.*-->)?\s*$", re.IGNORECASE)


@dataclass
class SgmlDoc:
    """One ``<doc>``: its ``docid`` and its ``(seg id, text)`` pairs in file order."""

    docid: str
    segs: list[tuple[int, str]] = field(default_factory=list)
    line: int = 0  # line of the <doc> tag, for error messages


def _lines(path: Path, name: str) -> list[str]:
    # Only \n ends a line: str.splitlines() would also split on U+2028, \x1c, \x85 and
    # friends, which may occur inside a segment's text.
    lines = read_lines(path, label=name, strip_cr=True)
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    return lines


def read_sgml_docs(path: str | Path, *, label: str | None = None) -> list[SgmlDoc]:
    """The documents of a WMT SGML file, segments in order, entities unescaped.

    Raises DataError (``file:line: what``) on a segment outside a document, a document
    outside the set, an unclosed element, a repeated segment id within a document, an
    unknown line, or a file with no segments. Messages name the file as ``label`` if given
    (e.g. its path inside an archive), else as ``path``.
    """
    path = Path(path)
    name = label or str(path)
    docs: list[SgmlDoc] = []
    doc: SgmlDoc | None = None
    in_set = seen_set = False
    for n, line in enumerate(_lines(path, name), 1):
        where = f"{name}:{n}"
        if _OPEN_SET.match(line):
            if in_set:
                raise DataError(f"{where}: nested set element")
            in_set = seen_set = True
        elif _CLOSE_SET.match(line):
            if doc is not None:
                raise DataError(f"{where}: set closed inside an open <doc>")
            if not in_set:
                raise DataError(f"{where}: closing tag without an open set")
            in_set = False
        elif _OPEN_DOC.match(line):
            if not in_set:
                raise DataError(f"{where}: <doc> outside <srcset>/<refset>")
            if doc is not None:
                raise DataError(f"{where}: <doc> inside an open <doc>")
            m = _DOCID.search(line)
            doc = SgmlDoc(html.unescape(m.group(1)) if m else f"#{len(docs) + 1}", line=n)
            seen_ids: set[int] = set()
        elif _CLOSE_DOC.match(line):
            if doc is None:
                raise DataError(f"{where}: </doc> without an open <doc>")
            docs.append(doc)
            doc = None
        elif m := _SEG.match(line):
            if doc is None:
                raise DataError(f"{where}: <seg> outside a <doc>")
            if len(m.group(1)) > 18:  # int() refuses > 4300 digits; no real id is this long
                raise DataError(f"{where}: segment id {m.group(1)[:20]}... is too long")
            segid = int(m.group(1))
            if segid in seen_ids:
                raise DataError(f"{where}: segment id {segid} repeated in doc {doc.docid!r}")
            seen_ids.add(segid)
            doc.segs.append((segid, html.unescape(m.group(2)).strip()))
        elif "<seg" in line.lower():
            raise DataError(f'{where}: malformed <seg> (expected <seg id="N">...</seg>)')
        elif not _OTHER.match(line):
            raise DataError(f"{where}: unexpected line {line.strip()[:60]!r}")
    if doc is not None:
        raise DataError(f"{name}: file ends inside the <doc> opened on line {doc.line}")
    if in_set:
        raise DataError(f"{name}: file ends inside an open set")
    if not seen_set:
        raise DataError(f"{name}: no <srcset> or <refset> element; is this a WMT SGML file?")
    if not any(d.segs for d in docs):
        raise DataError(f"{name}: no <seg> elements")
    return docs


def read_sgml(path: str | Path, *, label: str | None = None) -> list[str]:
    """Segments of a WMT SGML file, in order, entities unescaped (see :func:`read_sgml_docs`)."""
    return [text for d in read_sgml_docs(path, label=label) for _, text in d.segs]


def read_parallel_sgml(
    src: str | Path, ref: str | Path, *, labels: tuple[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """Source and reference segments of a test set, checked to be aligned.

    Both files must hold the same documents (by ``docid``, in order) with the same segment
    ids; the first difference is a DataError naming both files and the document.
    ``labels`` name the two files in messages (see :func:`read_sgml_docs`).
    """
    src_name, ref_name = labels or (str(src), str(ref))
    src_docs = read_sgml_docs(src, label=src_name)
    ref_docs = read_sgml_docs(ref, label=ref_name)
    src, ref = src_name, ref_name
    for i, (s, r) in enumerate(zip(src_docs, ref_docs, strict=False), 1):
        if s.docid != r.docid:
            raise DataError(
                f"{src}:{s.line} and {ref}:{r.line}: document {i} is {s.docid!r} in one and "
                f"{r.docid!r} in the other"
            )
        if [k for k, _ in s.segs] != [k for k, _ in r.segs]:
            raise DataError(
                f"{src}:{s.line} and {ref}:{r.line}: doc {s.docid!r} has {len(s.segs)} "
                f"segments in one and {len(r.segs)} in the other (or different ids)"
            )
    if len(src_docs) != len(ref_docs):
        raise DataError(f"{src} has {len(src_docs)} documents but {ref} has {len(ref_docs)}")
    return (
        [t for d in src_docs for _, t in d.segs],
        [t for d in ref_docs for _, t in d.segs],
    )


def write_sgml(
    path: str | Path,
    docs: Iterable[tuple[str, Sequence[str]]],
    *,
    setid: str,
    kind: str = "src",
    srclang: str = "en",
    trglang: str = "de",
    origlang: str = "en",
) -> None:
    """Write ``docs`` (``(docid, segments)`` pairs) as a WMT SGML ``srcset``/``refset``."""
    if kind not in ("src", "ref"):
        raise ValueError(f"kind must be 'src' or 'ref', not {kind!r}")
    out = []
    if kind == "src":
        out.append(f'<srcset setid="{setid}" srclang="any">')
    else:
        out.append(f'<refset setid="{setid}" srclang="any" trglang="{trglang}">')
    for docid, segs in docs:
        docid = html.escape(str(docid), quote=True)
        out.append(f'<doc sysid="ref" docid="{docid}" genre="news" origlang="{origlang}">')
        out.append("<p>")
        for i, seg in enumerate(segs, 1):
            if "\n" in seg:
                raise ValueError(f"segment {i} of {docid} contains a newline")
            out.append(f'<seg id="{i}">{html.escape(seg, quote=True)}</seg>')
        out.append("</p>")
        out.append("</doc>")
    out.append("</srcset>" if kind == "src" else "</refset>")
    Path(path).write_text("\n".join(out) + "\n", encoding="utf-8")
