"""WMT SGML: round trip, entities, alignment checks, and errors that name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiayn.data.sgml import read_parallel_sgml, read_sgml, read_sgml_docs, write_sgml
from aiayn.errors import DataError

HEAD = '<srcset setid="newstest2014" srclang="any">'
DOC = '<doc sysid="ref" docid="d1" genre="news" origlang="en">'


def _write(tmp_path: Path, lines: list[str], name: str = "x.sgm") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_round_trip_keeps_order_and_unescapes_entities(tmp_path):
    docs = [
        ("bbc-1", ["Gutach: Increased safety for pedestrians", "A & B <c> \"d\" 'e'"]),
        ("cnn&co", ["Zweites Dokument", "x  ", "Ünïcödé „Zitat“ \u2028 mit Trenner"]),
    ]
    p = tmp_path / "src.sgm"
    write_sgml(p, docs, setid="newstest2014", kind="src")
    text = p.read_text(encoding="utf-8")
    assert "A &amp; B &lt;c&gt; &quot;d&quot;" in text  # escaped on disk
    segs = read_sgml(p)
    assert segs == [
        "Gutach: Increased safety for pedestrians",
        "A & B <c> \"d\" 'e'",
        "Zweites Dokument",
        "x",  # segment text is stripped, as sacreBLEU does
        "Ünïcödé „Zitat“ \u2028 mit Trenner",  # U+2028 is not a line break here
    ]
    parsed = read_sgml_docs(p)
    assert [d.docid for d in parsed] == ["bbc-1", "cnn&co"]
    assert [k for k, _ in parsed[1].segs] == [1, 2, 3]


def test_reads_crlf_bom_paragraphs_and_unquoted_ids(tmp_path):
    raw = "\ufeff" + "\r\n".join(
        [HEAD, DOC, "<p>", "<seg id=1>one</seg>", '<seg id = "2" >two</seg>', "</p>", "</doc>"]
        + ["</srcset>", ""]
    )
    p = tmp_path / "crlf.sgm"
    p.write_bytes(raw.encode("utf-8"))
    assert read_sgml(p) == ["one", "two"]


@pytest.mark.parametrize(
    "lines, line, message",
    [
        ([HEAD, '<seg id="1">x</seg>', "</srcset>"], 2, "<seg> outside a <doc>"),
        ([DOC, '<seg id="1">x</seg>', "</doc>"], 1, "<doc> outside"),
        ([HEAD, DOC, DOC], 3, "<doc> inside an open <doc>"),
        ([HEAD, DOC, '<seg id="1">x</sge>', "</doc>", "</srcset>"], 3, "malformed <seg>"),
        ([HEAD, DOC, "<seg>no id</seg>", "</doc>", "</srcset>"], 3, "malformed <seg>"),
        ([HEAD, DOC, "free text", "</doc>", "</srcset>"], 3, "unexpected line"),
        ([HEAD, DOC, '<seg id="1">a</seg>', '<seg id="1">b</seg>'], 4, "repeated"),
        ([HEAD, "</doc>", "</srcset>"], 2, "without an open <doc>"),
        ([HEAD, HEAD], 2, "nested set"),
    ],
)
def test_malformed_sgml_names_file_and_line(tmp_path, lines, line, message):
    p = _write(tmp_path, lines)
    with pytest.raises(DataError, match=message) as e:
        read_sgml(p)
    assert str(e.value).startswith(f"{p}:{line}: ")


@pytest.mark.parametrize(
    "lines, message",
    [
        ([HEAD, DOC, '<seg id="1">a</seg>'], "ends inside the <doc> opened on line 2"),
        ([HEAD, DOC, '<seg id="1">a</seg>', "</doc>"], "ends inside an open set"),
        (["<p>", "</p>"], "no <srcset> or <refset>"),
        ([HEAD, DOC, "</doc>", "</srcset>"], "no <seg> elements"),
    ],
)
def test_malformed_sgml_structure(tmp_path, lines, message):
    p = _write(tmp_path, lines)
    with pytest.raises(DataError, match=message) as e:
        read_sgml(p)
    assert str(p) in str(e.value)


def test_invalid_utf8_names_line_and_label(tmp_path):
    p = tmp_path / "bad.sgm"
    p.write_bytes(f'{HEAD}\n{DOC}\n<seg id="1">caf\xe9</seg>\n'.encode("latin-1"))
    at = p.read_bytes().index(b"\xe9")
    with pytest.raises(
        DataError, match=rf"^test-full/x\.sgm:3: not UTF-8 text \(byte 0xE9 at offset {at} of"
    ):
        read_sgml(p, label="test-full/x.sgm")


def _pair(tmp_path, src_docs, ref_docs):
    s, r = tmp_path / "src.sgm", tmp_path / "ref.sgm"
    write_sgml(s, src_docs, setid="t", kind="src")
    write_sgml(r, ref_docs, setid="t", kind="ref")
    return s, r


def test_parallel_sgml_aligned(tmp_path):
    s, r = _pair(
        tmp_path, [("a", ["1", "2"]), ("b", ["3"])], [("a", ["eins", "zwei"]), ("b", ["drei"])]
    )
    assert read_parallel_sgml(s, r) == (["1", "2", "3"], ["eins", "zwei", "drei"])


@pytest.mark.parametrize(
    "ref_docs, message",
    [
        ([("a", ["eins", "zwei"]), ("c", ["drei"])], "document 2 is 'b' in one and 'c'"),
        ([("a", ["eins"]), ("b", ["drei"])], "doc 'a' has 2 segments in one and 1"),
        ([("a", ["eins", "zwei"])], "has 2 documents but .* has 1"),
    ],
)
def test_parallel_sgml_misaligned(tmp_path, ref_docs, message):
    s, r = _pair(tmp_path, [("a", ["1", "2"]), ("b", ["3"])], ref_docs)
    with pytest.raises(DataError, match=message) as e:
        read_parallel_sgml(s, r, labels=("src.sgm", "ref.sgm"))
    assert "src.sgm" in str(e.value) and "ref.sgm" in str(e.value)


def test_write_rejects_newline_in_segment(tmp_path):
    with pytest.raises(ValueError, match="newline"):
        write_sgml(tmp_path / "x.sgm", [("d", ["a\nb"])], setid="t")
