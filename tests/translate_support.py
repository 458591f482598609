"""A tiny project with a real averaged model, for the translate tests: a byte-level BPE of
300 tokens, two random 1+1-layer checkpoints and ``data/model`` averaged from them."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from decode_fakes import EOS

from aiayn.config import ModelConfig, to_dict


def tiny_corpus() -> list[str]:
    words = "the a cat dog sat on mat house small big red green runs walks today".split()
    g = torch.Generator().manual_seed(0)
    return [
        " ".join(words[i] for i in torch.randint(0, len(words), (8,), generator=g).tolist())
        for _ in range(300)
    ]


TINY_MODEL = ModelConfig(
    encoder_layers=1, decoder_layers=1, d_model=16, d_ff=32, n_heads=2, max_positions=64
)


def build_tiny_project(root: Path, cfg: ModelConfig = TINY_MODEL, eos_boost: float = 4.0) -> Path:
    """``root`` with a BPE tokenizer of the tiny corpus (data/tokenizer/tokenizer.json), two
    random checkpoints of ``cfg`` (</s>'s embedding scaled by ``eos_boost``: > 1 makes
    outputs short) and their average in data/model; returns ``root``."""
    from tokenizers import pre_tokenizers, trainers

    from aiayn.average import average_checkpoints
    from aiayn.config import AverageConfig
    from aiayn.model import Transformer
    from aiayn.tokenizer import new_tokenizer
    from aiayn.vocab import SPECIAL_TOKENS

    tok = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tiny_corpus(), trainer)
    (root / "data" / "tokenizer").mkdir(parents=True)
    tok_path = root / "data" / "tokenizer" / "tokenizer.json"
    tok.save(str(tok_path))
    vocab = tok.get_vocab_size()

    ck = root / "data" / "checkpoints"
    ck.mkdir()
    for step, seed in ((100, 0), (200, 1)):
        torch.manual_seed(seed)
        model = Transformer(cfg, vocab)
        with torch.no_grad():
            model.embed.weight[EOS].mul_(eos_boost)  # end sentences early: short, fast tests
        state = {"model": model.state_dict(), "step": step, "model_config": to_dict(cfg)}
        state["vocab_size"] = vocab
        torch.save(state, ck / f"checkpoint_{step:08d}.pt")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            average_checkpoints(
                AverageConfig(last=2), ck, tok_path.relative_to(root), root / "data" / "model"
            )
    finally:
        os.chdir(cwd)
    return root
