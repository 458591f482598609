"""WMT SGML test sets (``newstest2014-deen-src.en.sgm`` and friends): read and write.

The official files hold one ``<seg id="N">text</seg>`` per line inside ``<doc>`` elements
inside a ``<srcset>`` or ``<refset>``; text is entity-escaped. :func:`read_sgml` returns the
segments in file order with entities unescaped and raises :class:`~aiayn.errors.DataError`
naming the file and line of anything malformed; :func:`write_sgml` writes the same layout.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from aiayn.errors import DataError

_SEG = re.compile(r'^\s*<seg\s+id\s*=\s*"?(\d+)"?\s*>(.*)</seg>\s*$', re.IGNORECASE)
_OPEN_SET = re.compile(r"^\s*<(srcset|refset|tstset)\b[^>]*>\s*$", re.IGNORECASE)
_CLOSE_SET = re.compile(r"^\s*</(srcset|refset|tstset)>\s*$", re.IGNORECASE)
_OPEN_DOC = re.compile(r"^\s*<doc\b[^>]*>\s*$", re.IGNORECASE)
_CLOSE_DOC = re.compile(r"^\s*</doc>\s*$", re.IGNORECASE)
_OTHER = re.compile(r"^\s*(</?p>|</?hl>|<\?xml[^>]*>|<!--.*-->)?\s*$", re.IGNORECASE)


def read_sgml(path: str | Path) -> list[str]:
    """Segments of a WMT SGML file, in order, entities unescaped.

    Raises DataError (``file:line: what``) on a segment outside a document, a document
    outside the set, an unclosed element, an unknown line, or a file with no segments.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    segments: list[str] = []
    in_set = in_doc = False
    seen_set = False
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{n}"
        if _OPEN_SET.match(line):
            if in_set:
                raise DataError(f"{where}: nested set element")
            in_set = seen_set = True
        elif _CLOSE_SET.match(line):
            if in_doc:
                raise DataError(f"{where}: set closed inside an open <doc>")
            if not in_set:
                raise DataError(f"{where}: closing tag without an open set")
            in_set = False
        elif _OPEN_DOC.match(line):
            if not in_set:
                raise DataError(f"{where}: <doc> outside <srcset>/<refset>")
            if in_doc:
                raise DataError(f"{where}: <doc> inside an open <doc>")
            in_doc = True
        elif _CLOSE_DOC.match(line):
            if not in_doc:
                raise DataError(f"{where}: </doc> without an open <doc>")
            in_doc = False
        elif m := _SEG.match(line):
            if not in_doc:
                raise DataError(f"{where}: <seg> outside a <doc>")
            segments.append(html.unescape(m.group(2)).strip())
        elif "<seg" in line.lower():
            raise DataError(f'{where}: malformed <seg> (expected <seg id="N">...</seg>)')
        elif not _OTHER.match(line):
            raise DataError(f"{where}: unexpected line {line.strip()[:60]!r}")
    if in_doc or in_set:
        raise DataError(f"{path}: file ends inside an open {'<doc>' if in_doc else 'set'}")
    if not seen_set:
        raise DataError(f"{path}: no <srcset> or <refset> element; is this a WMT SGML file?")
    if not segments:
        raise DataError(f"{path}: no <seg> elements")
    return segments


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
