"""Model arithmetic: parameters per part, training FLOPs, the memory of one training step.

Everything here is closed-form from a :class:`~aiayn.config.ModelConfig` and a vocabulary
size (no model is built), so it is instant for the big model too; the tests check the
counts against real modules and the activation estimate against the tensors autograd saves.

- :func:`parameter_breakdown`: embeddings, encoder, decoder, output projection (untied);
  :func:`parameter_formula`, their total (the one closed form of the parameter count).
- :func:`forward_flops`, :func:`train_flops`, :func:`train_flops_per_token`: FLOPs, with a
  multiply-add counted as 2 and the backward pass as twice the forward.
- :func:`step_memory`: weights, gradients, Adam moments, activations and logits of one step
  (checked against measured peaks by ``bench/bench_memory.py``).
- :func:`model_summary` (a dict) and :func:`describe_model` (text): what ``aiayn model-info``
  prints and what training prints when it starts.

Torch is not imported here at module level (``aiayn --help`` imports this module).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from aiayn.config import ModelConfig
from aiayn.errors import AiaynError

# Mean source/target length in tokens assumed for the attention terms of the FLOP count
# (WMT14 EN-DE with a 37k BPE averages ~27-30 tokens per sentence).
DEFAULT_SEQ_LEN = 30
BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
Precision = Literal["fp32", "fp16", "bf16"]
Device = Literal["cuda", "cpu"]


# ----------------------------------------------------------------------------- parameters


def attention_widths(cfg: ModelConfig) -> tuple[int, int]:
    """(h d_k, h d_v): the width of Q and K, and of V, summed over heads (D and D by
    default, d_k = d_v = d_model / h)."""
    d_k, d_v = cfg.head_dims
    return cfg.n_heads * d_k, cfg.n_heads * d_v


def parameter_breakdown(cfg: ModelConfig, vocab_size: int) -> dict[str, int]:
    """Parameters per part: ``embeddings`` (the shared matrix when tied, else source +
    target), ``positions`` (the learned source and target tables; 0 for sinusoids),
    ``encoder`` and ``decoder`` (layers and, pre-norm, the final LayerNorm),
    ``output_projection`` (0 when tied: it is the embedding matrix), and ``total``.

    With D = d_model, F = d_ff, K = h d_k, W = h d_v: attention (D + 1)(2 K + W) for W^Q,
    W^K, W^V with biases and (W + 1) D for W^O (4 (D^2 + D) when K = W = D); FFN
    2 D F + F + D; LayerNorm 2 D; an encoder layer is attention + FFN + 2 LayerNorms, a
    decoder layer 2 attentions + FFN + 3 LayerNorms."""
    D, Fd, V = cfg.d_model, cfg.d_ff, vocab_size
    K, W = attention_widths(cfg)
    attention = (D + 1) * (2 * K + W) + (W + 1) * D
    ffn = 2 * D * Fd + Fd + D
    norm = 2 * D
    final = norm if cfg.norm == "pre" else 0
    parts = {
        "embeddings": V * D if cfg.tie_embeddings else 2 * V * D,
        "positions": 2 * cfg.max_positions * D if cfg.positional == "learned" else 0,
        "encoder": cfg.encoder_layers * (attention + ffn + 2 * norm) + final,
        "decoder": cfg.decoder_layers * (2 * attention + ffn + 3 * norm) + final,
        "output_projection": 0 if cfg.tie_embeddings else V * D,
    }
    parts["total"] = sum(parts.values())
    return parts


def parameter_formula(cfg: ModelConfig, vocab_size: int) -> int:
    """The exact parameter count of ``Transformer(cfg, vocab_size)`` in closed form: the
    total of :func:`parameter_breakdown`."""
    return parameter_breakdown(cfg, vocab_size)["total"]


def matmul_parameters(cfg: ModelConfig) -> int:
    """Weights that multiply every token (projections and FFN of both stacks, no biases,
    no embeddings): N_enc (2 D (K + W) + 2 D F) + N_dec (4 D (K + W) + 2 D F), with
    K = h d_k, W = h d_v (4 D^2 and 8 D^2 for the paper's d_k = d_v = D / h)."""
    D, Fd = cfg.d_model, cfg.d_ff
    KW = sum(attention_widths(cfg))
    return cfg.encoder_layers * (2 * D * KW + 2 * D * Fd) + cfg.decoder_layers * (
        4 * D * KW + 2 * D * Fd
    )


# ----------------------------------------------------------------------------- FLOPs


def forward_flops(
    cfg: ModelConfig, vocab_size: int, src_len: float, tgt_len: float
) -> tuple[float, float]:
    """Forward FLOPs (per source token, per target token) for sentences of ``src_len`` source
    and ``tgt_len`` target tokens.

    With K = h d_k and W = h d_v (both D for the paper's d_k = d_v = D / h), per source
    token: encoder projections and FFN 2 (2 D (K + W) + 2 D F) per layer, attention scores
    and weighted sum 2 S (K + W) per layer, and the decoder's cross-attention K and V
    projections 2 D (K + W) per decoder layer. Per target token: per decoder layer
    2 (3 D (K + W) + 2 D F) for projections and FFN, 2 T (K + W) for self-attention and
    2 S (K + W) for cross-attention; plus 2 D V for the output projection. Attention is
    counted over the whole score matrix (no saving for the causal half), as dense kernels
    compute it.
    """
    D, Fd, V = cfg.d_model, cfg.d_ff, vocab_size
    Ne, Nd = cfg.encoder_layers, cfg.decoder_layers
    KW = sum(attention_widths(cfg))
    per_src = Ne * (2 * (2 * D * KW + 2 * D * Fd) + 2 * src_len * KW) + Nd * 2 * D * KW
    per_tgt = Nd * (2 * (3 * D * KW + 2 * D * Fd) + 2 * (tgt_len + src_len) * KW) + 2 * D * V
    return float(per_src), float(per_tgt)


def train_flops(
    cfg: ModelConfig,
    vocab_size: int,
    src_tokens: float,
    tgt_tokens: float,
    src_len: float,
    tgt_len: float,
) -> float:
    """FLOPs of one training step (forward + backward = 3 x forward) over ``src_tokens``
    source and ``tgt_tokens`` target tokens in sentences of ``src_len``/``tgt_len`` tokens.

    Equals 6 x matmul params x tokens (encoder weights per source token, decoder weights per
    target token, cross-attention K/V weights per source token) + 6 D V per target token
    (output projection) + the attention terms 6 (K + W) (N_enc S + N_dec (T + S)) as in
    :func:`forward_flops` (12 D (...) for the paper's head sizes). Pass padded counts for the work done, non-padding
    counts for model FLOPs utilisation."""
    per_src, per_tgt = forward_flops(cfg, vocab_size, src_len, tgt_len)
    return 3.0 * (src_tokens * per_src + tgt_tokens * per_tgt)


def train_flops_per_token(
    cfg: ModelConfig, vocab_size: int, seq_len: float = DEFAULT_SEQ_LEN, src_per_tgt: float = 1.0
) -> float:
    """Training FLOPs per target token, with ``src_per_tgt`` source tokens per target token
    (WMT14 EN-DE: about 1) and sentences of ``seq_len`` tokens on both sides."""
    return train_flops(cfg, vocab_size, src_per_tgt, 1.0, seq_len, seq_len)


# ----------------------------------------------------------------------------- memory


def activation_bytes(
    cfg: ModelConfig,
    vocab_size: int,
    src_tokens: int,
    tgt_tokens: int,
    precision: Precision,
    device: Device = "cuda",
) -> int:
    """Estimated bytes autograd keeps for the backward pass of one step (and the loss's
    log-probabilities), for ``src_tokens``/``tgt_tokens`` padded tokens.

    Per token and layer, with K = h d_k and W = h d_v (D each by default): matmul inputs and
    outputs at the compute precision (encoder 2 D + 2 K + 2 W + F: layer input, Q/K/V,
    attention output, FFN input, ReLU output; decoder 3 D + 3 K + 3 W + F per target token
    and the cross-attention K/V, K + W per source token), LayerNorm inputs
    in fp32 with mean and rstd, each dropout mask (CUDA: one byte per element; CPU: the
    scaled noise, in the dtype of its input); the output projection's input and fp32
    log-probabilities (V) per target token. Assumes a fused attention kernel
    (flash/memory-efficient SDPA: no S x S matrix is kept); on CPU under bf16 attention runs
    in fp32, so its Q, K, V and output are kept at 4 bytes. With d_k != d_v (Table 3, row B)
    PyTorch's fused CPU kernel does not apply: its math fallback also keeps the h x T x S
    attention weights of every attention, which this estimate leaves out.
    """
    D, Fd, V = cfg.d_model, cfg.d_ff, vocab_size
    K, W = attention_widths(cfg)
    h = BYTES[precision]
    half = h == 2
    cuda = device == "cuda"
    drop = (1 if cuda else h) if cfg.dropout > 0 else 0  # bytes per masked element
    embed_drop = (1 if cuda else 4) if cfg.dropout > 0 else 0  # embeddings stay fp32
    act_drop = (1 if cuda else h) if cfg.activation_dropout > 0 else 0
    ln = 4 * D + 8  # fp32 input, mean, rstd
    ffn = Fd * h + (Fd * (act_drop + h) if act_drop else 0)  # ReLU out (+ mask, dropout out)
    enc_layer = (2 * D + 2 * K + 2 * W) * h + ffn + 2 * ln + 2 * drop * D + cfg.n_heads * 4
    dec_layer = 3 * (D + K + W) * h + ffn + 3 * ln + 3 * drop * D + 2 * cfg.n_heads * 4
    cross_kv = (K + W) * h + (D * h if half else 0)  # per source token and decoder layer
    memory = 0 if half else D * h  # fp32: one encoder output shared by every layer
    embed = 8 + embed_drop * D  # token ids (int64) and the embedding dropout mask
    final_ln = ln if cfg.norm == "pre" else 0
    if half and not cuda:  # CPU runs attention in fp32 (aiayn.model.attend): Q, K, V, output
        enc_layer += 2 * (K + W) * (4 - h)
        dec_layer += 3 * (K + W) * (4 - h)
        cross_kv += (K + W) * (4 - h)
    src = src_tokens * (
        embed + cfg.encoder_layers * enc_layer + cfg.decoder_layers * cross_kv + memory + final_ln
    )
    tgt = tgt_tokens * (embed + cfg.decoder_layers * dec_layer + final_ln + D * h + V * 4)
    return int(src + tgt)


def step_memory(
    cfg: ModelConfig,
    vocab_size: int,
    max_tokens: int,
    precision: Precision = "fp32",
    device: Device = "cuda",
) -> dict[str, int]:
    """Estimated bytes of one training step at ``max_tokens`` padded tokens per side (a
    micro-batch; with accumulation the gradients of the earlier ones are alive too).

    ``weights``, ``gradients`` (fp32 master weights, also under mixed precision),
    ``adam`` (two fp32 moments), ``half_weights`` (autocast's fp16/bf16 weight copies),
    ``activations`` (:func:`activation_bytes`), ``logit_grads`` (the fp32 gradients of the
    logits and log-probabilities alive at the start of backward), ``logits`` (the (B, T, V)
    logits at the compute precision: the trainer's ``forward_backward`` holds them in a
    local variable through backward, so they are alive at the peak), ``total``.

    Checked by ``python -m bench --only memory`` against the measured peak of live tensors
    in real training steps (CPU, fp32, base dims at 1024-4096 tokens; goal within 15 %) and
    by ``bench/gpu.sh`` against ``torch.cuda.max_memory_allocated``. Allocator slack and
    workspaces come on top (on a CPU the resident memory grows about 20 % more).
    """
    P = parameter_breakdown(cfg, vocab_size)["total"]
    mem = {
        "weights": 4 * P,
        "gradients": 4 * P,
        "adam": 8 * P,
        "half_weights": 2 * P if BYTES[precision] == 2 else 0,
        "activations": activation_bytes(cfg, vocab_size, max_tokens, max_tokens, precision, device),
        "logit_grads": 2 * 4 * max_tokens * vocab_size,
        "logits": BYTES[precision] * max_tokens * vocab_size,
    }
    mem["total"] = sum(mem.values())
    return mem


# ----------------------------------------------------------------------------- summary


def model_summary(
    cfg: ModelConfig,
    vocab_size: int,
    max_tokens: int | None = None,
    precision: Precision = "fp32",
    seq_len: float = DEFAULT_SEQ_LEN,
    device: Device = "cuda",
) -> dict:
    """Everything :func:`describe_model` prints, as a JSON-able dict."""
    from aiayn.config import to_dict

    parts = parameter_breakdown(cfg, vocab_size)
    per_src, per_tgt = forward_flops(cfg, vocab_size, seq_len, seq_len)
    out = {
        "model": to_dict(cfg),
        "vocab_size": vocab_size,
        "parameters": {"total": parts["total"], "trainable": parts["total"]},
        "parameters_by_part": {k: v for k, v in parts.items() if k != "total"},
        "matmul_parameters": matmul_parameters(cfg),
        "flops": {
            "seq_len": seq_len,
            "forward_per_src_token": per_src,
            "forward_per_tgt_token": per_tgt,
            "train_per_tgt_token": train_flops_per_token(cfg, vocab_size, seq_len),
            "assumes": "one source token per target token; multiply-add = 2 FLOPs; "
            "backward = 2 x forward",
        },
    }
    if max_tokens is not None:
        out["memory"] = {
            "max_tokens": max_tokens,
            "precision": precision,
            "device": device,
            "bytes": step_memory(cfg, vocab_size, max_tokens, precision, device),
        }
    return out


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _row(label: str, n: int) -> str:
    return f"  {label:<28}{n:>14,}"


def describe_model(
    cfg: ModelConfig,
    vocab_size: int,
    max_tokens: int | None = None,
    precision: Precision = "fp32",
    seq_len: float = DEFAULT_SEQ_LEN,
    device: Device = "cuda",
) -> str:
    """A few lines: parameters (total, trainable, per part), training FLOPs per target
    token with the formula, and, given ``max_tokens``, the estimated memory of one step."""
    s = model_summary(cfg, vocab_size, max_tokens, precision, seq_len, device)
    p, parts, fl = s["parameters"], s["parameters_by_part"], s["flops"]
    tie = "tied embeddings (source = target = output)" if cfg.tie_embeddings else "untied"
    d_k, d_v = cfg.head_dims
    learned = cfg.positional == "learned"
    lines = [
        f"Transformer: {cfg.encoder_layers}+{cfg.decoder_layers} layers, d_model={cfg.d_model}, "
        f"d_ff={cfg.d_ff}, h={cfg.n_heads} (d_k={d_k}, d_v={d_v}), dropout={cfg.dropout}, "
        f"{cfg.norm}-norm, {tie}, {cfg.positional} positions, vocabulary {vocab_size:,}",
        f"Parameters: {p['total']:,} total, {p['trainable']:,} trainable",
        _row(
            "embeddings" + (" (shared)" if cfg.tie_embeddings else " (source + target)"),
            parts["embeddings"],
        ),
    ]
    if learned:
        lines.append(_row("positions (source + target)", parts["positions"]))
    lines += [_row("encoder", parts["encoder"]), _row("decoder", parts["decoder"])]
    if not cfg.tie_embeddings:
        lines.append(_row("output projection", parts["output_projection"]))
    N, D, V, L = s["matmul_parameters"], cfg.d_model, vocab_size, seq_len
    KW = sum(attention_widths(cfg))
    lines += [
        f"Training FLOPs per target token: {fl['train_per_tgt_token'] / 1e9:.3f} GFLOP "
        f"(1 source token per target token, sentences of {L:g} tokens)",
        f"  = 3 x forward = 6 x {N / 1e6:.1f}M matmul params (encoder and cross-attention K/V "
        f"per source token, decoder per target token) + 6 x d_model x V = "
        f"{6 * D * V / 1e6:.0f}M (output projection) + attention 6 x h (d_k + d_v) x "
        f"(N_enc x S + N_dec x (T + S)) = "
        f"{6 * KW * (cfg.encoder_layers * L + cfg.decoder_layers * 2 * L) / 1e6:.1f}M",
    ]
    if max_tokens is not None:
        m = s["memory"]["bytes"]
        lines += [
            f"Memory of one training step at max_tokens={max_tokens:,} per side, "
            f"{precision} on {device} (an estimate):",
            f"  weights {_gib(m['weights'])}, gradients {_gib(m['gradients'])}, "
            f"Adam moments {_gib(m['adam'])}"
            + (
                f", {precision} weight copies {_gib(m['half_weights'])}"
                if m["half_weights"]
                else ""
            ),
            f"  activations {_gib(m['activations'])}, logit gradients {_gib(m['logit_grads'])}, "
            f"logits {_gib(m['logits'])}",
            f"  total ~{_gib(m['total'])} (plus allocator slack and workspace)",
        ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command


def _resolve(preset: str | None, params: Path | None) -> tuple[ModelConfig, str, object]:
    if preset is not None and params is not None:
        raise AiaynError("give either --preset or --params, not both")
    if params is not None:
        from aiayn.config import load_params

        p = load_params(params)
        return p.model, f"{params} (model section)", p
    from aiayn.model import PRESETS

    name = preset or "base"
    if name not in PRESETS:
        raise AiaynError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name], f"preset {name}", None


def model_info(
    preset: Annotated[
        str | None, typer.Option(help="base | big (paper Table 3) | demo; default base")
    ] = None,
    params: Annotated[
        Path | None, typer.Option(help="use the model section of this params file instead")
    ] = None,
    vocab_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="vocabulary size (default: tokenizer.vocab_size of --params, " "else 37000)"
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="padded tokens per side per step for the memory estimate "
            "(default: train.max_tokens of --params, else 4096)",
        ),
    ] = None,
    precision: Annotated[
        Precision, typer.Option(help="compute precision for the memory estimate")
    ] = "fp32",
    seq_len: Annotated[
        float, typer.Option(min=1, help="sentence length in tokens for the attention FLOPs")
    ] = DEFAULT_SEQ_LEN,
    device: Annotated[
        Device, typer.Option(help="cuda: dropout masks of 1 byte; cpu: full-size dropout noise")
    ] = "cuda",
    json_out: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """Parameters per part, training FLOPs per token and the memory of one training step."""
    cfg, source, p = _resolve(preset, params)
    if vocab_size is None:
        vocab_size = p.tokenizer.vocab_size if p is not None else 37000
    if max_tokens is None:
        max_tokens = p.train.max_tokens if p is not None else 4096
    if json_out:
        import json

        out = {
            "source": source,
            **model_summary(cfg, vocab_size, max_tokens, precision, seq_len, device),
        }
        print(json.dumps(out, indent=2))
        return
    print(f"[{source}]")
    print(describe_model(cfg, vocab_size, max_tokens, precision, seq_len, device))
