"""``aiayn attention``: the paper's attention pictures from the averaged model."""

from __future__ import annotations

import io
import math
import sys

import numpy as np
import pytest
import torch
from translate_support import build_tiny_project

from aiayn.attention_plot import (
    BYTE_OF,
    SPACE,
    collect_attention,
    draw_attention,
    label_step,
    output_path,
    piece_label,
)
from aiayn.cli import app
from aiayn.cli_util import run
from aiayn.config import ModelConfig, TranslateConfig
from aiayn.decode.translator import Translator

pytestmark = pytest.mark.usefixtures("one_thread")

# Two layers to choose from, room for a 200-token sentence.
MODEL = ModelConfig(
    encoder_layers=2, decoder_layers=2, d_model=16, d_ff=32, n_heads=2, max_positions=256
)
CFG = TranslateConfig(beam_size=2, max_len_b=8)
SENTENCE = "the small cat runs on the red mat today"
WORDS = "the a cat dog sat on mat house small big red green runs walks today".split()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    # </s> not made likely: translations of a few tokens (at most max_len_b = 8 more)
    return build_tiny_project(tmp_path_factory.mktemp("attention"), MODEL, eos_boost=1.0)


@pytest.fixture(scope="module")
def translator(project):
    return Translator.load(project / "data" / "model", device="cpu", precision="fp32")


def _panels(fig) -> list:
    """The visible heatmap axes of a figure (subfigures included), in drawing order."""
    return [ax for ax in fig.get_axes() if ax.get_visible() and ax.images]


def _run(args: list[str]) -> int:
    """``aiayn ARGS`` in this process; its exit code."""
    with pytest.raises(SystemExit) as e:
        run(app, args)
    return e.value.code


# ----------------------------------------------------------------------------- labels


def test_the_byte_table_is_the_tokenizers_byte_level_alphabet():
    from tokenizers import decoders, pre_tokenizers

    assert set(BYTE_OF) == set(pre_tokenizers.ByteLevel.alphabet())
    assert sorted(BYTE_OF.values()) == list(range(256))
    decoder = decoders.ByteLevel()
    for char, byte in BYTE_OF.items():
        if byte < 0x80:  # a whole UTF-8 character on its own
            assert decoder.decode([char]) == chr(byte)


@pytest.mark.parametrize(
    "piece, label",
    [
        ("\u0120agreement", SPACE + "agreement"),  # 'Ġagreement': a word start
        ("ment", "ment"),  # a continuation
        ("\u00c3\u00a4", "\u00e4"),  # 'Ã¤': the two bytes of 'ä'
        ("\u00c3", "\\xc3"),  # the first half of a character split between pieces
        ("\u00f0\u0141\u013a\u0122", "\U0001f600"),  # the four bytes of an emoji
        ("\u010a", "\\n"),  # 'Ċ': a line feed, shown escaped
        ("\u0120\u0120", SPACE * 2),
        ("</s>", "</s>"),
        ("<s>", "<s>"),
    ],
)
def test_piece_label_known_values(piece, label):
    assert piece_label(piece) == label


def test_labels_are_the_tokenizers_pieces(translator):
    from tokenizers import decoders

    maps = collect_attention(translator, SENTENCE, CFG)
    tok = translator.tokenizer
    pieces = tok.backend.encode(SENTENCE, add_special_tokens=False).tokens
    assert maps.src_labels == [piece_label(p) for p in pieces] + ["</s>"]
    assert "".join(maps.src_labels[:-1]) == SPACE + SENTENCE.replace(" ", SPACE)
    best = translator.hypotheses([SENTENCE], CFG)[0][0]
    out_pieces = [tok.id_to_token(i) for i in best.tokens]
    assert maps.out_labels == [piece_label(p) for p in out_pieces] + ["</s>"]
    assert maps.in_labels == ["<s>"] + maps.out_labels[:-1]
    # Each label is its piece's text as the tokenizer's own decoder reads it.
    decoder = decoders.ByteLevel()
    for piece in pieces + out_pieces:
        text = decoder.decode([piece])
        label = piece_label(piece)
        assert label.replace(SPACE, " ") == text if "\ufffd" not in text else "\\x" in label
    # and the picture shows exactly those labels, in order, at their rows and columns
    for kind, rows, cols in (
        ("enc", maps.src_labels, maps.src_labels),
        ("dec", maps.out_labels, maps.in_labels),
        ("cross", maps.out_labels, maps.src_labels),
    ):
        fig = draw_attention(maps, kind)
        for ax in _panels(fig):
            assert [t.get_text() for t in ax.get_xticklabels()] == cols
            assert [t.get_text() for t in ax.get_yticklabels()] == rows
            assert list(ax.get_xticks()) == list(range(len(cols)))
        fig.clf()


# ----------------------------------------------------------------------------- pictures


@pytest.mark.parametrize("kind", ["enc", "dec", "cross"])
def test_every_plotted_row_sums_to_one(translator, kind):
    maps = collect_attention(translator, SENTENCE, CFG)
    fig = draw_attention(maps, kind, layer=1)
    panels = _panels(fig)
    assert len(panels) == 2 + 2  # the two heads of layer 1, the mean of each layer
    assert [ax.get_title() for ax in panels] == ["head 1", "head 2", "layer 1", "layer 2"]
    for ax in panels:
        plotted = np.asarray(ax.images[0].get_array(), dtype=np.float64)
        assert np.abs(plotted.sum(axis=1) - 1).max() < 1e-5
        if kind == "dec":  # the future is masked
            assert np.triu(plotted, 1).max() == 0
    per_layer = maps.panels(kind)[0]
    np.testing.assert_array_equal(panels[1].images[0].get_array(), per_layer[0][1])
    np.testing.assert_allclose(panels[3].images[0].get_array(), per_layer[1].mean(0))
    fig.clf()


def test_the_pictured_attention_is_the_one_that_chose_the_translation(translator):
    """Re-reading the translation through decode_step inside the capture gives back the
    search's log-probability: the weights shown are the ones that produced it."""
    maps = collect_attention(translator, SENTENCE, CFG)
    best = translator.hypotheses([SENTENCE], CFG)[0][0]
    assert maps.logprob == pytest.approx(best.logprob, abs=1e-4)
    assert maps.translation == translator.translate([SENTENCE], CFG)[0]
    assert len(maps.out_labels) == len(best.tokens) + 1 > 3


def test_label_step_rule():
    pitch = 7 * 1.4 / 72  # inches one 7-point label needs
    assert label_step(20, 5.0) == 1
    assert label_step(36, 36 * pitch + 1e-9) == 1
    assert label_step(37, 36 * pitch + 1e-9) == 2
    assert label_step(200, 5.0) == math.ceil(200 / math.floor(5.0 / pitch)) == 6
    assert label_step(5, 0.01) == 5  # no room: one label
    assert label_step(0, 3.0) == 1


def test_a_200_token_sentence_renders_with_thinned_labels_that_do_not_overlap(translator):
    whole = [w for w in WORDS if len(translator.tokenizer.encode(w)) == 1]  # one piece each
    sentence = " ".join(whole[i % len(whole)] for i in range(200))
    assert len(whole) > 3 and len(translator.tokenizer.encode(sentence)) == 200
    maps = collect_attention(translator, sentence, CFG)
    fig = draw_attention(maps, "enc")
    fig.savefig(io.BytesIO(), format="png", dpi=110)  # the final layout
    renderer = fig.canvas.get_renderer()
    for ax in _panels(fig):
        for labels, along in ((ax.get_xticklabels(), "x"), (ax.get_yticklabels(), "y")):
            ticks = list(ax.get_xticks() if along == "x" else ax.get_yticks())
            step = ticks[1] - ticks[0]
            assert step > 1 and ticks == list(range(0, 201, step))  # thinned, evenly
            assert [t.get_text() for t in labels] == [maps.src_labels[i] for i in ticks]
            boxes = sorted(
                (t.get_window_extent(renderer) for t in labels),
                key=lambda b: getattr(b, along + "0"),
            )
            for a, b in zip(boxes, boxes[1:], strict=False):
                assert getattr(a, along + "1") <= getattr(b, along + "0") + 0.5, (along, a, b)
            # the labels fill the panel: twice as many would overlap
            length = ax.get_window_extent().width if along == "x" else ax.get_window_extent().height
            assert label_step(201, length / fig.dpi) == step
    fig.clf()


def test_output_names():
    p = output_path("The Ägreement: signed in 1992!", "cross", 6, __import__("pathlib").Path("o"))
    assert p.parent.name == "o" and p.name.startswith("the-agreement-signed-in-1992-")
    assert p.name.endswith(".cross.layer6.png")
    assert output_path("???", "enc", 1, p.parent).name.startswith("sentence-")
    assert output_path("a b", "enc", 1, p.parent) != output_path("a  b", "enc", 1, p.parent)


# ----------------------------------------------------------------------------- command


def test_command_writes_the_png_and_prints_its_path(project, monkeypatch, capsys, tmp_path):
    import matplotlib.image

    monkeypatch.chdir(project)  # no params.yaml: the paper's translate settings
    assert _run(["attention", SENTENCE, "--kind", "cross", "--layer", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr()
    path = project / out.out.strip()
    assert path.parent == project / "reports" / "attention"
    assert path.name.endswith(".cross.layer1.png") and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert SENTENCE in out.err
    height, width, _ = matplotlib.image.imread(path).shape
    assert width > 600 and height > 400
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left

    assert _run(["attention", SENTENCE, "-o", str(tmp_path / "pics")]) == 0  # enc, last layer
    assert capsys.readouterr().out.strip().endswith(".enc.layer2.png")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layer", "3"], "error: --layer must be between 1 and 2; got 3"),
        (["--layer", "0", "--kind", "dec"], "error: --layer must be between 1 and 2; got 0"),
        (["--model-dir", "nowhere"], "no trained model in nowhere"),
        (["--device", "tpu"], "error: --device must be one of auto, cpu, cuda; got 'tpu'"),
        (["-o", "/proc/no/such"], "error: cannot create output folder /proc/no/such"),
    ],
)
def test_command_errors_are_one_line_and_write_nothing(project, monkeypatch, capsys, args, message):
    monkeypatch.chdir(project)
    assert _run(["attention", SENTENCE, "-o", "errors", *args]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err
    assert not (project / "errors").exists()


@pytest.mark.parametrize(
    "sentence, message",
    [
        ("   ", "nothing to translate: the sentence is empty"),
        ("two\nlines", "give one sentence on one line"),
        (" ".join(["cat"] * 256), "the sentence has 256 BPE tokens; this model takes at most 255"),
    ],
)
def test_sentences_that_cannot_be_pictured(project, monkeypatch, capsys, sentence, message):
    monkeypatch.chdir(project)
    assert _run(["attention", sentence, "-o", "errors"]) == 1
    assert message in capsys.readouterr().err
    assert not (project / "errors").exists()


def test_without_matplotlib_the_error_names_the_extra(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    for name in [n for n in sys.modules if n.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # import matplotlib... -> ImportError
    assert _run(["attention", SENTENCE, "--model-dir", "nowhere"]) == 1  # checked first
    assert capsys.readouterr().err == (
        "error: attention pictures need matplotlib, which is not installed: "
        'pip install -e ".[viz]"\n'
    )


def test_picture_keeps_the_translators_model_unchanged(translator):
    before = {k: v.clone() for k, v in translator.model.state_dict().items()}
    collect_attention(translator, SENTENCE, CFG)
    after = translator.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(getattr(m, "record", None) is None for m in translator.model.modules())
