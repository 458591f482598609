"""``aiayn export``: Hugging Face transformers (Marian / Pegasus) and CTranslate2 exports
compute what aiayn computes, and ``aiayn translate --engine ctranslate2`` uses them.

Models here are tiny, trained for a few seconds on demo sentences (so their outputs depend
on the source and end by themselves), with LayerNorms and biases perturbed so that a wrong
mapping of any of them shows, and a BPE learned on the same sentences. The slow test at the
end uses the micro DVC run's trained model on its demo test set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from aiayn.config import ModelConfig, TranslateConfig, to_dict
from aiayn.decode.translator import Translator
from aiayn.errors import AiaynError, ConfigError, MissingInputError
from aiayn.export import (
    TOLERANCE,
    check_batch,
    export_ctranslate2,
    export_transformers,
    hf_config,
    max_logit_difference,
    residual_permutation,
)
from aiayn.model import Transformer, sinusoid_table
from aiayn.vocab import EOS, PAD

pytestmark = pytest.mark.usefixtures("one_thread")

KINDS = {
    "post": dict(norm="post", tie_embeddings=True),
    "pre": dict(norm="pre", tie_embeddings=True),
    "untied": dict(norm="post", tie_embeddings=False),
}


def demo_sentences(n: int, seed: int = 7) -> list[str]:
    from aiayn.data.demo import generate_pairs

    return [en for en, _ in generate_pairs(n, seed)]


def fit(model: Transformer, tok, pairs: list[tuple[str, str]], steps: int = 120) -> None:
    """A few Adam steps of teacher forcing: enough for outputs that depend on the source
    and end with </s> by themselves (random weights repeat one token to the length limit)."""
    import torch.nn.functional as F

    from aiayn.vocab import BOS

    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    src_ids = tok.encode_batch([p[0] for p in pairs])
    tgt_ids = tok.encode_batch([p[1] for p in pairs])

    def pad(rows: list[list[int]]) -> torch.Tensor:
        width = max(len(r) for r in rows)
        return torch.tensor([r + [PAD] * (width - len(r)) for r in rows])

    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(pairs), (48,), generator=g).tolist()
        src = pad([src_ids[i] + [EOS] for i in idx])
        tgt_in = pad([[BOS] + tgt_ids[i] for i in idx])
        tgt_out = pad([tgt_ids[i] + [EOS] for i in idx])
        logits = model(src, tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A tokenizer learned on demo sentences and one model folder per KINDS entry."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: fastest and steadiest on one thread
    try:
        return _make_project(tmp_path_factory.mktemp("export"))
    finally:
        torch.set_num_threads(threads)


def _make_project(root: Path) -> Path:
    from aiayn.config import TokenizerConfig
    from aiayn.data.demo import generate_pairs
    from aiayn.tokenizer import load_tokenizer, train_tokenizer

    clean = root / "clean"
    clean.mkdir()
    pairs = list(generate_pairs(3000, 1))
    for split, part in (("train", pairs[:2800]), ("dev", pairs[2800:2900]), ("test", pairs[2900:])):
        for lang, i in (("en", 0), ("de", 1)):
            (clean / f"{split}.{lang}").write_text("".join(p[i] + "\n" for p in part))
    tok_path = root / "tokenizer" / "tokenizer.json"
    train_tokenizer(
        TokenizerConfig(vocab_size=600, min_frequency=2, max_train_lines=0),
        clean,
        tok_path,
        root / "tokenizer.report.json",
    )
    tok = load_tokenizer(tok_path)
    for name, kw in KINDS.items():
        cfg = ModelConfig(
            encoder_layers=2,
            decoder_layers=2,
            d_model=32,
            d_ff=64,
            n_heads=4,
            dropout=0.0,
            max_positions=128,
            **kw,
        )
        torch.manual_seed(len(name))
        model = Transformer(cfg, tok.vocab_size)
        fit(model, tok, pairs[:2800])
        with torch.no_grad():
            for key, p in model.named_parameters():
                if "norm" in key or key.endswith("bias"):
                    p.add_(0.05 * torch.randn_like(p))
        folder = root / name
        folder.mkdir()
        torch.save(model.state_dict(), folder / "model.pt")
        meta = {
            "model_config": to_dict(cfg),
            "vocab_size": tok.vocab_size,
            "tokenizer": str(tok_path),
            "tokenizer_sha256": tok.sha256,
            "steps": [1],
        }
        (folder / "model.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def hf_exports(project) -> dict[str, Path]:
    return {k: export_transformers(project / k, project / f"hf-{k}")["path"] for k in KINDS}


def _aiayn(project: Path, kind: str) -> Translator:
    return Translator.load(project / kind, device="cpu", precision="fp32")


# ----------------------------------------------------------------------------- transformers


@pytest.mark.parametrize("d_model", [8, 10, 7])
def test_the_permutation_maps_the_papers_sinusoids_onto_marians(d_model):
    from transformers.models.marian.modeling_marian import MarianSinusoidalPositionalEmbedding

    marian = MarianSinusoidalPositionalEmbedding(50, d_model).create_weight()
    ours = sinusoid_table(50, d_model)[:, residual_permutation(d_model)]
    assert torch.allclose(ours, marian, atol=1e-6)
    assert not torch.allclose(sinusoid_table(50, d_model), marian, atol=1e-2)  # layouts differ


@pytest.mark.parametrize("kind", list(KINDS))
def test_exported_logits_equal_aiayns_on_demo_sentences(project, hf_exports, kind):
    from transformers import AutoModelForSeq2SeqLM

    hf = AutoModelForSeq2SeqLM.from_pretrained(hf_exports[kind]).eval()
    assert type(hf).__name__ == (
        "PegasusForConditionalGeneration" if kind == "pre" else "MarianMTModel"
    )
    t = _aiayn(project, kind)
    src, tgt_in = check_batch(t.tokenizer, demo_sentences(16))
    assert src.eq(PAD).any()  # padded rows are part of the check
    diff = max_logit_difference(t.model, hf, src, tgt_in)
    assert diff <= TOLERANCE
    with torch.inference_mode():
        logits = t.model(src, tgt_in)
    assert float(logits.std()) > 0.5  # not a trivially equal (flat) output


def test_export_without_the_permutation_is_refused(project, tmp_path, monkeypatch):
    """The sinusoid layouts differ: a plain copy of the weights is wrong, and the export's
    own check catches it (one line, nothing written)."""
    monkeypatch.setattr("aiayn.export.residual_permutation", lambda d: list(range(d)))
    with pytest.raises(AiaynError) as e:
        export_transformers(project / "post", tmp_path / "hf")
    assert "logits differ from aiayn's by" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize("kind", ["post", "pre"])
def test_greedy_generate_equals_aiayn_line_for_line(project, hf_exports, kind):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    hf = AutoModelForSeq2SeqLM.from_pretrained(hf_exports[kind]).eval()
    hf_tok = AutoTokenizer.from_pretrained(hf_exports[kind])
    t = _aiayn(project, kind)
    lines = demo_sentences(24, seed=3)
    ours = t.translate(lines, TranslateConfig(beam_size=1, max_len_a=0.0, max_len_b=40))
    batch = hf_tok(lines, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = hf.generate(**batch, max_new_tokens=40)  # greedy: the export's default
    theirs = hf_tok.batch_decode(out, skip_special_tokens=True)
    assert theirs == ours
    assert all(ours) and len(set(ours)) > len(lines) // 2  # real, varied outputs
    assert sum(len(o.split()) < 30 for o in ours) > len(lines) // 2  # most end by themselves


def test_tokenizer_matches_aiayns(project, hf_exports):
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(hf_exports["post"])
    t = _aiayn(project, "post")
    lines = [*demo_sentences(5), "literal </s> and <s> stay text", "  two  spaces ", "Grüße „x“"]
    assert hf_tok(lines).input_ids == [[*x, EOS] for x in t.tokenizer.encode_batch(lines)]
    ids = t.tokenizer.encode_batch(lines)
    assert hf_tok.batch_decode(ids, skip_special_tokens=True) == lines
    config = json.loads((Path(hf_exports["post"]) / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"  # transformers 4 loads it too


def test_pre_norm_untied_is_refused(project, tmp_path):
    meta = json.loads((project / "pre" / "model.json").read_text())
    meta["model_config"]["tie_embeddings"] = False
    folder = tmp_path / "m"
    folder.mkdir()
    model = Transformer(ModelConfig(**meta["model_config"]), meta["vocab_size"])
    torch.save(model.state_dict(), folder / "model.pt")
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="a pre-norm model exports as Pegasus"):
        export_transformers(folder, tmp_path / "out")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"positional": "learned"}, "model.positional: learned cannot be exported"),
        ({"d_k": 16, "d_v": 16}, "heads of d_k=16, d_v=16 (model.n_heads=4, model.d_model=32)"),
        ({"d_k": 8, "d_v": 4}, "heads of d_k=8, d_v=4"),
        ({"n_heads": 3, "d_k": 8, "d_v": 8}, "heads of d_k=8, d_v=8 (model.n_heads=3"),
    ],
)
def test_table3_variants_marian_cannot_compute_are_refused(
    project, tmp_path, capsys, change, message
):
    """Learned positions and d_k/d_v other than d_model / h: a one-line error naming the
    model, exit 1, nothing written, for both formats."""
    from aiayn.cli import app
    from aiayn.cli_util import run

    meta = json.loads((project / "post" / "model.json").read_text())
    meta["model_config"].update(change)
    folder = tmp_path / "m"
    folder.mkdir()
    model = Transformer(ModelConfig(**meta["model_config"]), meta["vocab_size"])
    torch.save(model.state_dict(), folder / "model.pt")
    (folder / "model.json").write_text(json.dumps(meta))
    for to in ("transformers", "ctranslate2"):
        with pytest.raises(SystemExit) as e:
            run(app, ["export", str(tmp_path / "out"), "--to", to, "--model-dir", str(folder)])
        assert e.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {folder / 'model.json'}: ") and err.count("\n") == 1, err
        assert message in err and "transformers, CTranslate2" in err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # nothing written


def test_explicit_head_sizes_equal_to_d_model_over_h_export(project):
    """d_k = d_v = d_model / h set explicitly is the same model: it exports."""
    meta = json.loads((project / "post" / "model.json").read_text())
    cfg = ModelConfig(**{**meta["model_config"], "d_k": 8, "d_v": 8})
    assert hf_config(cfg, meta["vocab_size"]).encoder_attention_heads == 4
    with pytest.raises(ConfigError, match="heads of d_k=16"):
        hf_config(ModelConfig(**{**meta["model_config"], "d_k": 16}), meta["vocab_size"])


def test_export_command_errors(project, tmp_path):
    from aiayn.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["export", str(tmp_path / "o"), "--to", "onnx"])
    assert r.exit_code == 1 and "--to must be one of transformers, ctranslate2" in str(r.exception)
    r = runner.invoke(app, ["export", str(tmp_path / "o"), "--quantization", "int8"])
    assert "--quantization applies to --to ctranslate2 only" in str(r.exception)
    r = runner.invoke(app, ["export", str(tmp_path / "o"), "--model-dir", str(tmp_path / "none")])
    assert isinstance(r.exception, MissingInputError)
    assert not (tmp_path / "o").exists()
    r = runner.invoke(app, ["export", str(tmp_path / "o"), "--model-dir", str(project / "post")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "model.safetensors").is_file()


# ----------------------------------------------------------------------------- CTranslate2


@pytest.fixture(scope="module")
def ct2_exports(project) -> dict[str, Path]:
    out = {k: project / f"ct2-{k}" for k in ("post", "pre")}
    for k, path in out.items():
        export_ctranslate2(project / k, path)
    export_ctranslate2(project / "post", project / "ct2-int8", quantization="int8")
    out["int8"] = project / "ct2-int8"
    return out


@pytest.mark.parametrize("kind", ["post", "pre"])
def test_ctranslate2_greedy_equals_aiayn(project, ct2_exports, kind):
    from aiayn.decode.ctranslate2 import Ctranslate2Translator

    t = _aiayn(project, kind)
    ct = Ctranslate2Translator.load(ct2_exports[kind], device="cpu")
    lines = ["", *demo_sentences(20, seed=5), "   "]
    cfg = TranslateConfig(beam_size=1, max_len_a=0.0, max_len_b=30)
    ours, theirs = t.translate(lines, cfg), ct.translate(lines, cfg)
    assert theirs == ours
    assert theirs[0] == "" and theirs[-1] == "" and len(set(ours)) > 10


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_ctranslate2_beam_equals_aiayns(project, ct2_exports, alpha):
    """Beam 4 with GNMT's length penalty applied to CTranslate2's finished hypotheses: the
    same 2-best lists as aiayn, with the same scores and log-probabilities. (Lines that run into the length limit are left out: aiayn forces
    </s> there and counts its log-probability, CTranslate2 stops without it.)"""
    from aiayn.decode.ctranslate2 import Ctranslate2Translator

    t = _aiayn(project, "post")
    ct = Ctranslate2Translator.load(ct2_exports["post"], device="cpu")
    lines = demo_sentences(30, seed=6)
    cfg = TranslateConfig(beam_size=4, length_penalty=alpha, max_len_a=0.0, max_len_b=40)
    ours, theirs = t.hypotheses(lines, cfg, nbest=2), ct.hypotheses(lines, cfg, nbest=2)
    ended = [i for i, hs in enumerate(ours) if all(len(h.tokens) < 40 for h in hs)]
    assert len(ended) >= 20
    for i in ended:
        assert [h.tokens for h in theirs[i]] == [h.tokens for h in ours[i]], lines[i]
        for a, b in zip(ours[i], theirs[i], strict=True):  # the same outputs' log-probs
            assert b.logprob == pytest.approx(a.logprob, rel=1e-3)
            assert b.score == pytest.approx(a.score, rel=1e-3)


def test_ctranslate2_output_lengths_respect_max_len(project, ct2_exports):
    from aiayn.decode.ctranslate2 import Ctranslate2Translator

    ct = Ctranslate2Translator.load(ct2_exports["post"], device="cpu")
    lines = demo_sentences(8, seed=9)
    for b in (1, 3):
        hyps = ct.hypotheses(lines, TranslateConfig(beam_size=4, max_len_a=0.0, max_len_b=b))
        assert all(len(h[0].tokens) <= b for h in hyps)
        assert all(PAD not in h[0].tokens and 1 not in h[0].tokens for h in hyps)


def test_int8_export_translates(project, ct2_exports):
    from aiayn.decode.ctranslate2 import Ctranslate2Translator

    meta = json.loads((ct2_exports["int8"] / "aiayn.json").read_text())
    assert meta["quantization"] == "int8"
    assert (ct2_exports["int8"] / "model.bin").stat().st_size < (
        ct2_exports["post"] / "model.bin"
    ).stat().st_size
    out = Ctranslate2Translator.load(ct2_exports["int8"]).translate(
        demo_sentences(4), TranslateConfig(max_len_b=10)
    )
    assert len(out) == 4 and all(isinstance(s, str) for s in out)


def test_translate_command_with_ctranslate2(project, ct2_exports, tmp_path):
    from aiayn.cli import app

    runner = CliRunner()
    text = "".join(s + "\n" for s in demo_sentences(5, seed=11))
    args = ["translate", "--beam-size", "4", "--params", str(tmp_path / "p.yaml")]
    (tmp_path / "p.yaml").write_text((Path(__file__).parent.parent / "params.yaml").read_text())
    r1 = runner.invoke(app, [*args, "--model-dir", str(project / "post")], input=text)
    r2 = runner.invoke(
        app,
        [*args, "--engine", "ctranslate2", "--model-dir", str(ct2_exports["post"])],
        input=text,
    )
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    assert len(r2.stdout.splitlines()) == 5
    same = sum(a == b for a, b in zip(r1.stdout.splitlines(), r2.stdout.splitlines(), strict=True))
    assert same >= 4
    r = runner.invoke(
        app,
        ["translate", "--engine", "ctranslate2", "--model-dir", str(project / "post")],
        input="x\n",
    )
    assert isinstance(r.exception, MissingInputError)
    assert "is not an aiayn CTranslate2 export (model.bin is missing)" in str(r.exception)
    r = runner.invoke(app, ["translate", "--engine", "marian"], input="x\n")
    assert "--engine must be one of aiayn, ctranslate2" in str(r.exception)
    r = runner.invoke(
        app,
        [
            "translate",
            "--engine",
            "ctranslate2",
            "--precision",
            "bf16",
            "--model-dir",
            str(ct2_exports["post"]),
        ],
        input="x\n",
    )
    assert "--precision applies to --engine aiayn" in str(r.exception)


# ----------------------------------------------------------------------------- a trained model


@pytest.mark.slow
def test_trained_model_exports_agree_on_the_demo_test_set(tmp_path_factory):
    """The micro DVC run's trained (post-norm) model on its demo test set: transformers'
    logits within 1e-4 and greedy ``generate`` identical line for line; CTranslate2's beam-4
    translations (alpha 0.6 passed as it is) equal aiayn's on >= 98 % of the lines."""
    from dvc_support import micro_run
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from aiayn.config import load_params
    from aiayn.decode.ctranslate2 import Ctranslate2Translator
    from aiayn.decode.translator import read_text_lines

    proj = micro_run(tmp_path_factory, "export")
    model_dir = proj / "data" / "model"
    meta = json.loads((model_dir / "model.json").read_text())
    meta["tokenizer"] = str(proj / meta["tokenizer"])
    (model_dir / "model.json").write_text(json.dumps(meta))
    lines = read_text_lines(proj / "data" / "clean" / "test.en")
    t = Translator.load(model_dir, device="cpu", precision="fp32")

    hf_dir = export_transformers(model_dir, tmp_path_factory.mktemp("hf") / "m")["path"]
    hf = AutoModelForSeq2SeqLM.from_pretrained(hf_dir).eval()
    hf_tok = AutoTokenizer.from_pretrained(hf_dir)
    src, tgt_in = check_batch(t.tokenizer, lines)
    assert max_logit_difference(t.model, hf, src, tgt_in) <= TOLERANCE
    greedy = TranslateConfig(beam_size=1, max_len_a=0.0, max_len_b=60)
    ours = t.translate(lines, greedy)
    with torch.inference_mode():
        out = hf.generate(**hf_tok(lines, return_tensors="pt", padding=True), max_new_tokens=60)
    assert hf_tok.batch_decode(out, skip_special_tokens=True) == ours

    ct2_dir = tmp_path_factory.mktemp("ct2") / "m"
    export_ctranslate2(model_dir, ct2_dir)
    cfg = load_params(proj / "params.yaml").translate
    beam = TranslateConfig(**{**to_dict(cfg), "beam_size": 4})
    assert beam.length_penalty == 0.6
    ours = t.translate(lines, beam)
    theirs = Ctranslate2Translator.load(ct2_dir, device="cpu").translate(lines, beam)
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    assert same >= 0.98 * len(lines), f"{same} of {len(lines)} equal"
    assert sum(len(s.split()) for s in ours) > len(lines)  # the model translates something
