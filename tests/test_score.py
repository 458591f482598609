"""Scoring: sacreBLEU, chrF, length ratio and the paper's tokenized compound-split BLEU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aiayn.config import ScoreConfig
from aiayn.errors import DataError, MissingInputError
from aiayn.score import (
    bleu_tok,
    bleu_tok_t2t_ref,
    print_summary,
    read_lines,
    score_files,
    score_lines,
    score_splits,
    split_compounds,
    tokenize_for_bleu_tok,
)

REFS = [
    "Die Hafen-Stadt Hamburg ist 1.000 km von München entfernt.",
    "„Das ist ein E-Mail-Konto“, sagte sie.",
    "Wir haben heute keine Zeit & kein Geld.",
    "",
    "Der Zug kommt um 12:30 Uhr an; er ist pünktlich.",
    "Sie kaufte drei Äpfel und zwei Birnen auf dem Markt.",
]
HYPS = [
    "Die Hafenstadt Hamburg ist 1.000 km von München entfernt.",
    "„Das ist ein E-Mail-Konto“, sagte er.",
    "Wir haben heute keine Zeit und kein Geld.",
    "",
    "Der Zug kommt um 12:30 Uhr an, er ist pünktlich.",
    "Sie kaufte drei Äpfel und Birnen auf dem Markt.",
]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_reference_against_itself_is_100():
    m = score_lines(REFS, REFS, ScoreConfig())
    assert m["sacrebleu"] == 100.0
    assert m["bleu_tok"] == 100.0
    assert m["chrf"] == 100.0
    assert m["length_ratio"] == 1.0
    assert m["lines"] == len(REFS)


def test_imperfect_translation_scores_below_100():
    m = score_lines(HYPS, REFS, ScoreConfig())
    assert 30 < m["sacrebleu"] < 100
    assert 30 < m["bleu_tok"] < 100
    assert 50 < m["chrf"] < 100
    assert m["length_ratio"] < 1.0  # the hypotheses drop words
    assert "tok:13a" in m["signature"] and "case:mixed" in m["signature"]
    assert m["signature"].startswith("nrefs:1|")
    assert "chrF" not in m["signature"] and "nc:6" in m["chrf_signature"]


def test_compound_split_german():
    assert split_compounds("Das E-Mail-Konto der Hafen-Stadt") == (
        "Das E ##AT##-##AT## Mail ##AT##-##AT## Konto der Hafen ##AT##-##AT## Stadt"
    )
    # Perl's s///g does not overlap matches: the "B" is consumed by the first match.
    assert split_compounds("A-B-Test") == "A ##AT##-##AT## B-Test"
    # A hyphen with a space on either side is not a compound.
    assert split_compounds("Berlin - Hamburg und -los Haus-") == "Berlin - Hamburg und -los Haus-"


def test_bleu_tok_pipeline_steps():
    # replace-unicode-punctuation turns the curly quotes and the full-width "？" and "…" into
    # ASCII; the Moses tokenizer (-l de) splits punctuation and escapes & and "; the
    # compound split marks the hyphens. The German low quote „ is not in the table.
    line = "Die “Hafen-Stadt” ist weit & schön – oder？ „Ja…"
    assert tokenize_for_bleu_tok([line]) == [
        "Die &quot; Hafen ##AT##-##AT## Stadt &quot; ist weit &amp; schön – oder ? „ Ja ..."
    ]


def test_t2t_reference_has_ascii_quotes_and_no_unicode_replacement():
    # tensor2tensor's tweaked newstest2014 reference: every unicode double quote made ASCII
    # (escaped to &quot; by the tokenizer), nothing else replaced (’ stays).
    ref = "Er sagte „Ja“ – und «nein» – zu Peter’s “E-Mail”."
    assert tokenize_for_bleu_tok([ref], t2t_reference=True) == [
        "Er sagte &quot; Ja &quot; – und &quot; nein &quot; – zu Peter ’ s &quot; E "
        "##AT##-##AT## Mail &quot; ."
    ]


def test_bleu_tok_t2t_ref_scores_the_quotes_as_tensor2tensor_did():
    from sacrebleu.metrics import BLEU

    def multi_bleu(hyp_tok, ref_tok):
        return BLEU(tokenize="none", smooth_method="none").corpus_score(hyp_tok, [ref_tok]).score

    ref = ["Er sagte „ Ja “ und ging ."]
    # A German-quoted hypothesis matches the official reference, but its „ (which
    # replace-unicode-punctuation leaves alone) misses the tweaked reference's &quot;.
    german = ["Er sagte „Ja“ und ging."]
    assert bleu_tok(german, ref) == pytest.approx(100.0)
    assert bleu_tok_t2t_ref(german, ref) == pytest.approx(
        multi_bleu(["Er sagte „ Ja &quot; und ging ."], ["Er sagte &quot; Ja &quot; und ging ."])
    )
    assert bleu_tok_t2t_ref(german, ref) < 100.0
    # ASCII quotes: the other way round.
    ascii_ = ['Er sagte "Ja" und ging.']
    assert bleu_tok_t2t_ref(ascii_, ref) == pytest.approx(100.0)
    assert bleu_tok(ascii_, ref) < 99.0
    m = score_lines(german, ref, ScoreConfig())
    assert m["bleu_tok_t2t_ref"] == round(bleu_tok_t2t_ref(german, ref), 2)
    assert "ref:unicode-double-quotes-to-ascii" in m["bleu_tok_t2t_ref_signature"]


def test_bleu_tok_is_multi_bleu_on_hand_tokenized_text():
    from sacrebleu.metrics import BLEU

    hyp = ["Das E-Mail-Konto ist voll, sagte er."]
    ref = ["Das E-Mail-Konto ist fast voll, sagte sie."]
    hyp_tok = ["Das E ##AT##-##AT## Mail ##AT##-##AT## Konto ist voll , sagte er ."]
    ref_tok = ["Das E ##AT##-##AT## Mail ##AT##-##AT## Konto ist fast voll , sagte sie ."]
    expected = BLEU(tokenize="none", smooth_method="none").corpus_score(hyp_tok, [ref_tok])
    assert bleu_tok(hyp, ref) == pytest.approx(expected.score)
    # The compound split inflates matches relative to sacreBLEU's 13a tokens.
    assert bleu_tok(hyp, ref) > score_lines(hyp, ref, ScoreConfig())["sacrebleu"]


def test_score_agrees_with_sacrebleu_command(tmp_path):
    hyp = write(tmp_path / "hyp.de", HYPS)
    ref = write(tmp_path / "ref.de", REFS)
    sacrebleu = Path(sys.executable).with_name("sacrebleu")
    out = subprocess.run(
        [str(sacrebleu), str(ref), "-i", str(hyp), "-b", "-w", "2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert score_files(hyp, ref, ScoreConfig())["sacrebleu"] == float(out)
    chrf = subprocess.run(
        [str(sacrebleu), str(ref), "-i", str(hyp), "-b", "-w", "2", "-m", "chrf"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert score_files(hyp, ref, ScoreConfig())["chrf"] == float(chrf)


def test_lowercase_option_changes_sacrebleu():
    hyps, refs = ["das ist gut ."], ["Das ist gut ."]
    assert score_lines(hyps, refs, ScoreConfig(lowercase=True))["sacrebleu"] == 100.0
    assert score_lines(hyps, refs, ScoreConfig(lowercase=False))["sacrebleu"] < 100.0


def test_different_line_counts_error_names_both_files(tmp_path):
    hyp = write(tmp_path / "hyp.de", HYPS[:-1])
    ref = write(tmp_path / "ref.de", REFS)
    with pytest.raises(DataError) as e:
        score_files(hyp, ref, ScoreConfig())
    msg = str(e.value)
    assert str(hyp) in msg and str(ref) in msg
    assert f"{len(HYPS) - 1} lines" in msg and f"{len(REFS)} lines" in msg


def test_read_lines_splits_on_newline_only(tmp_path):
    p = tmp_path / "x.de"
    p.write_bytes("a\u2028b \r\nc\n\nd".encode())
    assert read_lines(p) == ["a\u2028b", "c", "", "d"]
    bad = tmp_path / "bad.de"
    bad.write_bytes(b"ok\n\xff\n")
    with pytest.raises(DataError, match=r"bad\.de:2: not UTF-8 text \(byte 0xFF at offset 3 of"):
        read_lines(bad)


def test_score_splits_writes_metrics(tmp_path):
    pairs = {
        "test": (write(tmp_path / "test.hyp", HYPS), write(tmp_path / "test.ref", REFS)),
        "dev": (write(tmp_path / "dev.hyp", REFS), write(tmp_path / "dev.ref", REFS)),
    }
    out = tmp_path / "reports" / "metrics.json"
    score_splits(ScoreConfig(), pairs, out)
    metrics = json.loads(out.read_text())
    assert list(metrics) == ["test", "dev"]
    assert metrics["dev"]["sacrebleu"] == 100.0
    assert metrics["test"]["sacrebleu"] < 100.0
    for key in ("sacrebleu", "bleu_tok", "bleu_tok_t2t_ref", "chrf", "length_ratio", "signature"):
        assert key in metrics["test"]


def test_print_summary_has_a_line_per_split_with_its_bleu(tmp_path, capsys):
    pairs = {
        "test": (write(tmp_path / "test.hyp", HYPS), write(tmp_path / "test.ref", REFS)),
        "dev": (write(tmp_path / "dev.hyp", REFS), write(tmp_path / "dev.ref", REFS)),
    }
    out = tmp_path / "metrics.json"
    metrics = score_splits(ScoreConfig(), pairs, out)
    capsys.readouterr()
    print_summary(out)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["test", "dev"]
    assert f"sacreBLEU {metrics['test']['sacrebleu']:.2f} " in lines[0]
    assert "sacreBLEU 100.00 " in lines[1] and f"({len(REFS)} lines)" in lines[1]
    with pytest.raises(MissingInputError, match="nope.json"):
        print_summary(tmp_path / "nope.json")


def test_score_splits_missing_translation_writes_nothing(tmp_path):
    ref = write(tmp_path / "test.ref", REFS)
    out = tmp_path / "metrics.json"
    with pytest.raises(MissingInputError, match="missing input .*nope.de.*dvc repro translate"):
        score_splits(ScoreConfig(), {"test": (tmp_path / "nope.de", ref)}, out)
    assert not out.exists()


def test_score_command_prints_json(tmp_path):
    from typer.testing import CliRunner

    from aiayn.cli import app

    hyp = write(tmp_path / "hyp.de", HYPS)
    ref = write(tmp_path / "ref.de", REFS)
    result = CliRunner().invoke(app, ["score", str(hyp), str(ref)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == score_files(hyp, ref, ScoreConfig())

    short = write(tmp_path / "short.de", HYPS[:2])
    proc = subprocess.run(
        [sys.executable, "-m", "aiayn", "score", str(short), str(ref)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: line counts differ") and "Traceback" not in proc.stderr
