"""``aiayn export``: a trained model for Hugging Face ``transformers`` and for CTranslate2.

``aiayn export --to transformers DIR`` writes a folder that ``transformers`` loads offline
with ``AutoModelForSeq2SeqLM.from_pretrained(DIR)`` and ``AutoTokenizer.from_pretrained(DIR)``:

- the architecture: ``MarianMTModel`` for a post-norm model (the paper's; Marian is the
  post-norm, sinusoidal, sqrt(d_model)-scaled, tied Transformer) and
  ``PegasusForConditionalGeneration`` for a pre-norm one (the demo's): the same Transformer
  with LayerNorm before each sub-layer and a final LayerNorm after each stack. Both use ReLU
  feed-forwards and aiayn's special ids (``<pad>`` 0, ``<s>`` 1 starts the decoder, ``</s>``
  2), and ``generation_config.json`` never generates ``<pad>`` or ``<s>`` (aiayn's search
  does not either);
- the positions: the paper interleaves sin and cos (``PE[:, 2i] = sin``, ``PE[:, 2i+1] =
  cos``); Marian and Pegasus put all the sines first, then all the cosines, and recompute
  their table when they load (it is not saved). The model is therefore exported in a
  permuted basis of the model dimension, ``P = [0, 2, 4, ..., 1, 3, 5, ...]``
  (:func:`residual_permutation`): every weight that reads the residual stream gets its
  input columns permuted, every weight that writes it (and the LayerNorms) its output rows.
  LayerNorm, attention and the tied output projection are invariant under a permutation of
  the model dimension, so the exported model computes exactly aiayn's function (up to
  float rounding; :func:`check_export` measures it);
- the tokenizer: a ``PreTrainedTokenizerFast`` over aiayn's ``tokenizer.json`` whose
  post-processor appends ``</s>`` (what the translator adds to every source), with literal
  ``<s>``/``</s>`` in text kept as text (``split_special_tokens``) and no clean-up of
  spaces on decoding, so ``decode(ids, skip_special_tokens=True)`` is aiayn's text.

``aiayn export --to ctranslate2 DIR`` (the ``export`` extra: ``pip install -e ".[export]"``)
converts that transformers export with CTranslate2's own converter, with a loader that
keeps aiayn's ``<s>`` start token (CTranslate2's stock Marian loader starts the decoder
from a zero vector and drops the last vocabulary entry as Marian's ``<pad>``), and adds
``tokenizer.json`` and ``aiayn.json`` for ``aiayn translate --engine ctranslate2``.
``--quantization int8`` (or ``int8_float32``, ``int16``, ``float16``, ...) is CTranslate2's.

Every export checks itself before it is moved into place: the exported model's logits on a
few sentences must equal aiayn's within :data:`TOLERANCE`.

Two of Table 3's variations have no counterpart in Marian or Pegasus and are refused before
anything is written (:func:`check_exportable`): learned positions (row E; both recompute a
sinusoid table) and heads whose d_k or d_v differ from d_model / h (rows A-C with explicit
``model.d_k``/``model.d_v``; both derive the head size from d_model and h).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aiayn import paths
from aiayn.errors import AiaynError, ConfigError

if TYPE_CHECKING:
    import torch

    from aiayn.config import ModelConfig
    from aiayn.model import Transformer

TOLERANCE = 1e-4  # largest |logit difference| an export may show against aiayn
FORMATS = ("transformers", "ctranslate2")
ARCHITECTURES = {"post": "MarianMTModel", "pre": "PegasusForConditionalGeneration"}
CHECK_SENTENCES = (
    "The city council meets on Monday.",
    "We have to support the plan of the Commission, because it is good for Europe.",
    "Yes.",
)


def _log(msg: str) -> None:
    print(f"export: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- config


def check_exportable(cfg: ModelConfig, where: str = "") -> None:
    """A one-line ``ConfigError`` (prefixed by ``where``) for a model Marian and Pegasus
    cannot compute: learned positions, or heads other than d_k = d_v = d_model / h."""
    prefix = f"{where}: " if where else ""
    if cfg.positional != "sinusoidal":
        raise ConfigError(
            f"{prefix}model.positional: {cfg.positional} cannot be exported: Marian and Pegasus "
            "(transformers, CTranslate2) have sinusoidal positions only; export a model "
            "trained with model.positional: sinusoidal"
        )
    d_k, d_v = cfg.head_dims
    if d_k != d_v or cfg.n_heads * d_k != cfg.d_model:
        raise ConfigError(
            f"{prefix}heads of d_k={d_k}, d_v={d_v} (model.n_heads={cfg.n_heads}, "
            f"model.d_model={cfg.d_model}) cannot be exported: Marian and Pegasus "
            "(transformers, CTranslate2) have d_k = d_v = d_model / n_heads; export a model "
            "trained with model.d_k and model.d_v 0"
        )


def hf_config(cfg: ModelConfig, vocab_size: int, **overrides: Any):
    """The ``transformers`` config of a model with ``cfg``'s dimensions: a ``MarianConfig``
    for post-norm, a ``PegasusConfig`` for pre-norm; ``overrides`` on top.
    :func:`check_exportable` first."""
    from transformers import MarianConfig, PegasusConfig

    check_exportable(cfg)

    common = dict(
        vocab_size=vocab_size,
        d_model=cfg.d_model,
        encoder_layers=cfg.encoder_layers,
        decoder_layers=cfg.decoder_layers,
        encoder_attention_heads=cfg.n_heads,
        decoder_attention_heads=cfg.n_heads,
        encoder_ffn_dim=cfg.d_ff,
        decoder_ffn_dim=cfg.d_ff,
        activation_function="relu",
        dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.activation_dropout,
        max_position_embeddings=cfg.max_positions,
        scale_embedding=True,
        tie_word_embeddings=cfg.tie_embeddings,
        pad_token_id=0,
        bos_token_id=1,
        decoder_start_token_id=1,
        eos_token_id=2,
        forced_eos_token_id=None,
    )
    if cfg.norm == "post":
        common |= dict(
            decoder_vocab_size=vocab_size, share_encoder_decoder_embeddings=cfg.tie_embeddings
        )
        return MarianConfig(**(common | overrides))
    if not cfg.tie_embeddings:
        raise ConfigError(
            "a pre-norm model exports as Pegasus, which shares one embedding matrix; this "
            "one has model.tie_embeddings: false (untied models export with model.norm: post)"
        )
    return PegasusConfig(**(common | overrides))


def generation_config(max_positions: int):
    """Greedy by default, aiayn's ids, never ``<pad>`` or ``<s>``, up to the model's length."""
    from transformers import GenerationConfig

    return GenerationConfig(
        decoder_start_token_id=1,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        forced_eos_token_id=None,
        suppress_tokens=[0, 1],
        max_length=max_positions,
        num_beams=1,
    )


# ----------------------------------------------------------------------------- weights


def residual_permutation(d_model: int) -> list[int]:
    """``P`` with ``marian_table[:, j] == paper_table[:, P[j]]``: even columns (sines), then
    odd ones (cosines)."""
    return [*range(0, d_model, 2), *range(1, d_model, 2)]


def hf_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """aiayn's weights under the names of ``MarianMTModel`` / ``PegasusForConditionalGeneration``,
    in the permuted basis of :func:`residual_permutation` (float32, CPU)."""
    import torch

    cfg, D = model.cfg, model.cfg.d_model
    P = torch.tensor(residual_permutation(D))
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}

    def reads(name: str, w: torch.Tensor, b: torch.Tensor | None) -> None:
        """A linear map whose input is the residual stream: permute its input columns."""
        out[f"{name}.weight"] = w[:, P].contiguous()
        if b is not None:
            out[f"{name}.bias"] = b.clone()

    def writes(name: str, w: torch.Tensor, b: torch.Tensor) -> None:
        """A linear map (or LayerNorm) writing the residual stream: permute its outputs."""
        out[f"{name}.weight"] = w[P].contiguous()
        out[f"{name}.bias"] = b[P].contiguous()

    def attention(hf: str, q, k, v, o: str) -> None:
        for proj, (w, b) in zip(("q_proj", "k_proj", "v_proj"), (q, k, v), strict=True):
            reads(f"{hf}.{proj}", w, b)
        writes(f"{hf}.out_proj", sd[f"{o}.weight"], sd[f"{o}.bias"])

    def split(prefix: str, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(
            zip(sd[f"{prefix}.weight"].split(D), sd[f"{prefix}.bias"].split(D), strict=True)
        )[:n]

    def ffn_and_norms(hf: str, ours: str, norms: dict[str, str]) -> None:
        reads(f"{hf}.fc1", sd[f"{ours}.ffn.w1.weight"], sd[f"{ours}.ffn.w1.bias"])
        writes(f"{hf}.fc2", sd[f"{ours}.ffn.w2.weight"], sd[f"{ours}.ffn.w2.bias"])
        for hf_norm, our_norm in norms.items():
            writes(
                f"{hf}.{hf_norm}", sd[f"{ours}.{our_norm}.weight"], sd[f"{ours}.{our_norm}.bias"]
            )

    pre = cfg.norm == "pre"
    for i in range(cfg.encoder_layers):
        hf, ours = f"model.encoder.layers.{i}", f"encoder.{i}"
        attention(f"{hf}.self_attn", *split(f"{ours}.self_attn.qkv", 3), f"{ours}.self_attn.out")
        # pre-norm (Pegasus) names its LayerNorms by the sub-layer they precede; post-norm
        # (Marian) by the sub-layer they follow: the same modules either way
        ffn_and_norms(hf, ours, {"self_attn_layer_norm": "norm1", "final_layer_norm": "norm2"})
    for i in range(cfg.decoder_layers):
        hf, ours = f"model.decoder.layers.{i}", f"decoder.{i}"
        attention(f"{hf}.self_attn", *split(f"{ours}.self_attn.qkv", 3), f"{ours}.self_attn.out")
        (q,) = split(f"{ours}.cross_attn.q", 1)
        attention(
            f"{hf}.encoder_attn", q, *split(f"{ours}.cross_attn.kv", 2), f"{ours}.cross_attn.out"
        )
        ffn_and_norms(
            hf,
            ours,
            {
                "self_attn_layer_norm": "norm1",
                "encoder_attn_layer_norm": "norm2",
                "final_layer_norm": "norm3",
            },
        )
    if pre:
        writes("model.encoder.layer_norm", sd["encoder_norm.weight"], sd["encoder_norm.bias"])
        writes("model.decoder.layer_norm", sd["decoder_norm.weight"], sd["decoder_norm.bias"])
    if cfg.tie_embeddings:
        E = sd["embed.weight"][:, P].contiguous()  # (V, D)
        for name in ("model.shared", "model.encoder.embed_tokens", "model.decoder.embed_tokens"):
            out[f"{name}.weight"] = E
        out["lm_head.weight"] = E
    else:
        out["model.encoder.embed_tokens.weight"] = sd["src_embed.weight"][:, P].contiguous()
        out["model.decoder.embed_tokens.weight"] = sd["tgt_embed.weight"][:, P].contiguous()
        out["lm_head.weight"] = sd["out_proj.weight"][:, P].contiguous()
    return out


def to_hf_model(model: Transformer):
    """A ``transformers`` model (eval mode, float32, CPU) that computes what ``model`` does."""
    from transformers import AutoModelForSeq2SeqLM

    hf = AutoModelForSeq2SeqLM.from_config(hf_config(model.cfg, model.vocab_size))
    hf.generation_config = generation_config(model.cfg.max_positions)
    target = hf.state_dict()
    weights = hf_state_dict(model)
    for key in target:  # the sinusoid tables and the zero logit bias stay the model's own
        if key not in weights and (".embed_positions." in key or key == "final_logits_bias"):
            weights[key] = target[key]
    hf.load_state_dict(weights, strict=True)
    return hf.eval()


def hf_tokenizer(tokenizer_path: str | Path, max_positions: int):
    """A ``PreTrainedTokenizerFast`` over aiayn's tokenizer that appends ``</s>`` like the
    translator does (``encode(text) == aiayn ids + [2]``) and decodes to aiayn's text."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    from aiayn.vocab import EOS, SPECIAL_TOKENS

    tok = Tokenizer.from_file(str(tokenizer_path))
    eos = SPECIAL_TOKENS[EOS]
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A $B {eos}", special_tokens=[(eos, EOS)]
    )
    pad, bos, _, unk = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=pad,
        bos_token=bos,
        eos_token=eos,
        unk_token=unk,
        split_special_tokens=True,
        clean_up_tokenization_spaces=False,
        model_max_length=max_positions - 1,
    )


def _portable_tokenizer_class(path: Path) -> None:
    """Name the tokenizer class ``PreTrainedTokenizerFast``: transformers 5 writes its new
    name ``TokenizersBackend``, which transformers 4 cannot load; both load the old one."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- checking


def check_batch(tokenizer, lines: Sequence[str] = CHECK_SENTENCES):
    """(src (B, S), tgt_in (B, T)) for the check: each line as source, and the same ids
    after ``<s>`` as a stand-in target (any ids do for comparing logits)."""
    import torch

    from aiayn.vocab import BOS, EOS, PAD

    ids = tokenizer.encode_batch(list(lines))
    S = max(len(x) for x in ids) + 1
    src = torch.full((len(ids), S), PAD)
    tgt = torch.full((len(ids), S), PAD)
    for r, x in enumerate(ids):
        src[r, : len(x) + 1] = torch.tensor([*x, EOS])
        tgt[r, : len(x) + 1] = torch.tensor([BOS, *x])
    return src, tgt


def max_logit_difference(model: Transformer, hf, src, tgt_in) -> float:
    """max |aiayn logits - transformers logits| over the real (non-pad) target positions."""
    import torch

    from aiayn.vocab import PAD

    with torch.inference_mode():
        ours = model(src, tgt_in)  # (B, T, V)
        theirs = hf(
            input_ids=src,
            attention_mask=src.ne(PAD).long(),
            decoder_input_ids=tgt_in,
            decoder_attention_mask=tgt_in.ne(PAD).long(),
        ).logits
    real = tgt_in.ne(PAD)  # (B, T)
    return float((ours - theirs).abs()[real].max())


def check_export(model: Transformer, hf, src, tgt_in, what: str) -> float:
    """Raise :class:`AiaynError` unless ``hf``'s logits equal ``model``'s within TOLERANCE."""
    diff = max_logit_difference(model, hf, src, tgt_in)
    if not diff <= TOLERANCE:
        raise AiaynError(
            f"{what}: logits differ from aiayn's by {diff:.3g} (> {TOLERANCE:g}); this "
            "transformers version computes the architecture differently, nothing was written"
        )
    return diff


# ----------------------------------------------------------------------------- exporting


def _load(model_dir: Path):
    """The averaged model (fp32, CPU, eval) and its tokenizer; :func:`check_exportable`."""
    from aiayn.decode.translator import Translator

    t = Translator.load(model_dir, device="cpu", precision="fp32")
    check_exportable(t.model.cfg, str(Path(model_dir) / "model.json"))
    return t.model, t.tokenizer


def export_transformers(model_dir: Path, out: Path) -> dict:
    """Write the transformers export of ``model_dir`` to ``out`` (replaced atomically)."""
    model, tokenizer = _load(model_dir)
    summary = write_transformers(model, tokenizer, Path(out))
    _log(
        f"wrote {out}: {summary['architecture']}, logits within "
        f"{summary['max_logit_difference']:.2g} of aiayn's"
    )
    return summary


def write_transformers(model: Transformer, tokenizer, out: Path) -> dict:
    """The transformers export of ``model`` (with ``tokenizer``, a BpeTokenizer) in ``out``,
    checked after loading it back the way a user would."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from aiayn.fsio import atomic_dir

    src, tgt_in = check_batch(tokenizer)
    hf = to_hf_model(model)
    with atomic_dir(out) as tmp:
        hf.save_pretrained(tmp)
        hf_tokenizer(tokenizer.path, model.cfg.max_positions).save_pretrained(tmp)
        _portable_tokenizer_class(tmp / "tokenizer_config.json")
        # what a user's from_pretrained gets is what is checked
        loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp).eval()
        diff = check_export(model, loaded, src, tgt_in, f"{out} ({type(loaded).__name__})")
        ids = AutoTokenizer.from_pretrained(tmp)(list(CHECK_SENTENCES)).input_ids
        want = [[*x, 2] for x in tokenizer.encode_batch(list(CHECK_SENTENCES))]
        if ids != want:
            raise AiaynError(f"{out}: the exported tokenizer encodes differently from aiayn's")
    return {
        "format": "transformers",
        "architecture": type(loaded).__name__,
        "path": str(out),
        "max_logit_difference": diff,
    }


def export_ctranslate2(model_dir: Path, out: Path, quantization: str | None = None) -> dict:
    """Write the CTranslate2 export of ``model_dir`` to ``out`` (replaced atomically)."""
    from aiayn.decode.ctranslate2 import import_ctranslate2
    from aiayn.fsio import atomic_dir, ensure_writable_dir

    ctranslate2 = import_ctranslate2()

    model, tokenizer = _load(model_dir)
    ensure_writable_dir(Path(out).parent)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=Path(out).parent) as hf_dir:
        write_transformers(model, tokenizer, Path(hf_dir) / "transformers")
        converter = converter_class()(str(Path(hf_dir) / "transformers"))
        with atomic_dir(Path(out)) as tmp:
            converter.convert(str(tmp), quantization=quantization, force=True)
            (tmp / "tokenizer.json").write_bytes(Path(tokenizer.path).read_bytes())
            meta = {
                "format": "ctranslate2",
                "ctranslate2": ctranslate2.__version__,
                "quantization": quantization or "float32",
                "model_config": _dict(model.cfg),
                "vocab_size": model.vocab_size,
                "tokenizer_sha256": tokenizer.sha256,
            }
            (tmp / "aiayn.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            agree = check_ctranslate2(model, tmp, tokenizer)
    _log(f"wrote {out}: CTranslate2 ({meta['quantization']}), greedy output {agree}")
    return {**meta, "path": str(out)}


def _dict(cfg) -> dict:
    from aiayn.config import to_dict

    return to_dict(cfg)


def check_ctranslate2(model: Transformer, ct2_dir: Path, tokenizer) -> str:
    """Greedy search on :data:`CHECK_SENTENCES`, 20 tokens, in aiayn and in the converted
    model; for float32 they must agree token for token (a quantized model may differ: the
    return value says how many agree)."""
    import torch

    from aiayn.config import TranslateConfig
    from aiayn.decode.ctranslate2 import Ctranslate2Translator
    from aiayn.decode.search import greedy_search

    src, _ = check_batch(tokenizer)
    n = src.size(0)
    ours = [h[0].tokens for h in greedy_search(model, src, torch.full((n,), 20))]
    engine = Ctranslate2Translator.load(ct2_dir, device="cpu")
    rows = [r[r.ne(0)].tolist() for r in src]
    theirs = [h[0].tokens for h in engine.search(rows, [20] * n, TranslateConfig(beam_size=1), 1)]
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    quantized = json.loads((ct2_dir / "aiayn.json").read_text())["quantization"] != "float32"
    if same != n and not quantized:
        raise AiaynError(
            f"{ct2_dir}: CTranslate2's greedy output differs from aiayn's on {n - same} of "
            f"{n} check sentences; nothing was written"
        )
    return f"equal to aiayn's on {same} of {n} check sentences"


def converter_class():
    """CTranslate2's TransformersConverter with a loader that keeps aiayn's vocabulary and
    its ``<s>`` decoder start (the stock Marian/Pegasus loaders assume Marian's and
    Pegasus' own conventions)."""
    from ctranslate2.converters.transformers import BartLoader, TransformersConverter

    class AiaynLoader(BartLoader):
        def __init__(self, architecture: str, pre_norm: bool):
            super().__init__()
            self._architecture, self._pre_norm = architecture, pre_norm

        @property
        def architecture_name(self) -> str:
            return self._architecture

        def get_model_spec(self, model):
            model.config.normalize_before = self._pre_norm
            model.config.normalize_embedding = False
            return super().get_model_spec(model)

        def set_config(self, config, model, tokenizer):
            config.bos_token = tokenizer.bos_token
            config.eos_token = tokenizer.eos_token
            config.unk_token = tokenizer.unk_token
            config.decoder_start_token = tokenizer.bos_token

    class Converter(TransformersConverter):
        def _load(self):
            import torch
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            with torch.no_grad():
                model = AutoModelForSeq2SeqLM.from_pretrained(self._model_name_or_path)
                tokenizer = AutoTokenizer.from_pretrained(self._model_name_or_path)
                name = type(model).__name__
                return AiaynLoader(name, pre_norm=name != ARCHITECTURES["post"])(model, tokenizer)

    return Converter


# ----------------------------------------------------------------------------- the command


def export_command(
    out: Annotated[Path, typer.Argument(help="folder to write (replaced if it exists)")],
    to: Annotated[str, typer.Option("--to", help="transformers or ctranslate2")] = "transformers",
    model_dir: Annotated[
        Path, typer.Option(help="averaged model folder (model.pt + model.json)")
    ] = paths.MODEL,
    quantization: Annotated[
        str | None,
        typer.Option(
            help="ctranslate2 only: int8, int8_float32, int16, float16, ... (default float32)"
        ),
    ] = None,
) -> None:
    """Export the averaged model for Hugging Face transformers or CTranslate2."""
    if to not in FORMATS:
        raise ConfigError(f"--to must be one of {', '.join(FORMATS)}; got {to!r}")
    if quantization is not None and to != "ctranslate2":
        raise ConfigError("--quantization applies to --to ctranslate2 only")
    if to == "transformers":
        export_transformers(model_dir, out)
    else:
        export_ctranslate2(model_dir, out, quantization)
