"""Where every pipeline stage reads and writes, relative to the project root.

``dvc.yaml`` declares the same paths; ``tests/test_dvc_yaml.py`` checks the two agree.
The raw layout is identical for ``data.source: demo``, ``wmt14`` and ``hf``.
"""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")

DATA = Path("data")
RAW = DATA / "raw"  # download: one plain-text file per side per corpus/split + manifest.json
CLEAN = DATA / "clean"  # clean: train.{en,de}, dev.{en,de}, test.{en,de}
TOKENIZER_DIR = DATA / "tokenizer"
TOKENIZER = TOKENIZER_DIR / "tokenizer.json"  # tokenize: the shared BPE model
SHARDS = DATA / "shards"  # shard: length-sorted token-id tensors + index.json
CHECKPOINTS = DATA / "checkpoints"  # train: persisted, resumable checkpoints
MODEL = DATA / "model"  # average: model.pt (weights only) + model.json
TRANSLATIONS = DATA / "translations"  # translate: dev.de, test.de (detokenized)

REPORTS = Path("reports")
METRICS = REPORTS / "metrics.json"  # score
PAPER_REPORT = REPORTS / "paper.md"  # score: this run beside the paper's Tables 2 and 3
DATA_REPORT_JSON = REPORTS / "data.json"  # clean
DATA_REPORT_MD = REPORTS / "data.md"  # clean
TOKENIZER_REPORT = REPORTS / "tokenizer.json"  # tokenize
SHARD_REPORT = REPORTS / "shards.json"  # shard
TRAIN_LIVE = REPORTS / "train"  # train: dvclive folder (metrics.json, plots/)
TRAIN_METRICS = TRAIN_LIVE / "metrics.json"  # train: the latest values (dvclive)
MODEL_JSON = MODEL / "model.json"  # average: model config, vocabulary, averaged steps

LANGS = ("en", "de")
SRC_LANG, TGT_LANG = "en", "de"
SPLITS = ("train", "dev", "test")

# Training corpora with their WMT14 names, in registry order.
CORPORA = ("europarl-v7", "commoncrawl", "news-commentary-v9")
DEV_SET = "newstest2013"
TEST_SET = "newstest2014"


def raw_train(corpus: str, lang: str, root: Path = RAW) -> Path:
    """``data/raw/train/<corpus>.<lang>``"""
    return root / "train" / f"{corpus}.{lang}"


def raw_dev(lang: str, root: Path = RAW) -> Path:
    """``data/raw/dev/newstest2013.<lang>``"""
    return root / "dev" / f"{DEV_SET}.{lang}"


def raw_test(lang: str, root: Path = RAW) -> Path:
    """``data/raw/test/newstest2014.<lang>``"""
    return root / "test" / f"{TEST_SET}.{lang}"


def clean_split(split: str, lang: str, root: Path = CLEAN) -> Path:
    """``data/clean/<split>.<lang>`` for split in train/dev/test."""
    return root / f"{split}.{lang}"


def translation(split: str, root: Path = TRANSLATIONS) -> Path:
    """``data/translations/<split>.de``: detokenized system output for dev/test."""
    return root / f"{split}.{TGT_LANG}"
