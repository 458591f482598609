"""One byte-level BPE model shared by English and German (section 5.1 of the paper).

The paper encodes WMT14 EN-DE "using byte-pair encoding, which has a shared source-target
vocabulary of about 37000 tokens". We learn that BPE with Hugging Face ``tokenizers`` on both
sides of ``data/clean/train.{en,de}``, streamed from the files.

Why byte-level: sacreBLEU scores detokenized text, so ``decode(encode(line)) == line`` must
hold for every cleaned line (German quotes, digits, hyphenated compounds, apostrophes, any
Unicode that survives cleaning). A byte-level alphabet covers all 256 bytes, so every string
is encodable and the unknown-token fraction is 0 by construction. The pipeline:

- normaliser ``Prepend(" ")``: every line gets one leading space, so a word at the start of a
  line is the same token as in the middle ("Haus" and " Haus" share ``ĠHaus``);
- pre-tokeniser ``ByteLevel(add_prefix_space=False)``: GPT-2 style split into words, digits
  and punctuation runs, each mapped to printable byte symbols;
- decoder ``ByteLevel`` then ``Strip(" ", 1, 0)``: bytes back to UTF-8, then the one space the
  normaliser added is removed. Since exactly one space is always added, exactly one is
  removed, and lines that start with spaces survive too.

Literal ``<s>``/``</s>``/``<pad>``/``<unk>`` in the text are encoded as plain text
(``encode_special_tokens``), never as the special ids.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aiayn import paths
from aiayn.errors import DataError, MissingInputError
from aiayn.fsio import iter_lines
from aiayn.vocab import MIN_VOCAB_SIZE, SPECIAL_TOKENS, UNK

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from aiayn.config import TokenizerConfig


_TRAIN_BATCH_LINES = 2000  # lines per item handed to train_from_iterator
_TRAIN_JOIN_LINES = 100  # single-spaced lines joined into one training text
_WORD_CACHE_MAX = 5_000_000  # distinct words kept by encode_flat (WMT14 has ~2M)


class BpeTokenizer:
    """A loaded shared BPE model: ``encode`` text to ids and ``decode`` ids back to text.

    ``encode`` adds no special tokens (callers append EOS); ``decode`` skips special ids,
    and ``decode(encode(s)) == s`` for every string ``s``.
    """

    def __init__(self, tokenizer: Tokenizer, path: Path, sha256: str):
        tokenizer.encode_special_tokens = True  # literal "</s>" in text is text
        self._tok = tokenizer
        self.path = Path(path)
        self.sha256 = sha256
        self.vocab_size: int = tokenizer.get_vocab_size(with_added_tokens=True)
        self._words = _WordTable()  # word -> ids of " " + word, for encode_flat

    @property
    def backend(self) -> Tokenizer:
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tok

    def encode(self, text: str) -> list[int]:
        """Token ids of one line, without special tokens."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of many lines; the same as :meth:`encode` on each, much faster.

        Lines of single-space-separated words (every cleaned line) are assembled from a
        cache of per-word ids; only words not seen before go through ``tokenizers`` (in
        parallel Rust threads), and so do all other lines. See :meth:`encode_flat`.
        """
        flat, lens = self.encode_flat(texts)
        ends = np.cumsum(lens).tolist()
        ids = flat.tolist()
        return [ids[e - n : e] for e, n in zip(ends, lens.tolist(), strict=True)]

    def encode_flat(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """All lines' ids one after another (int64), and ids per line (int64 (n,)).

        Why a word cache is exact: the byte-level pre-tokeniser splits the text (with the
        one leading space the normaliser adds) by the GPT-2 pattern, whose pieces can only
        take a *single* space, and only as their first character. In a line of words joined
        by single spaces (no other whitespace, none at the ends) every piece therefore lies
        inside one " word", so the line's ids are the concatenation of each word's ids,
        where a word is encoded alone (the normaliser gives it its leading space). Other
        lines are encoded whole. ``tests/test_tokenizer.py`` checks this against
        :meth:`encode` on arbitrary Unicode.
        """
        texts = list(texts)
        regular = [is_single_spaced(line) for line in texts]
        split = [line.split(" ") if r else [] for line, r in zip(texts, regular, strict=True)]
        n_words = np.fromiter(
            (len(w) if r else 0 for w, r in zip(split, regular, strict=True)),
            dtype=np.int64,
            count=len(texts),
        )  # (n,) 0 for lines encoded whole
        words = list(
            itertools.chain.from_iterable(w for w, r in zip(split, regular, strict=True) if r)
        )
        table = self._words
        widx = table.lookup(words, self._tok)  # (n words,)
        tokens, word_lens = table.gather(widx)  # (total,), (n words,)
        lens = np.zeros(len(texts), dtype=np.int64)
        has_words = n_words > 0
        if len(words):
            starts = np.cumsum(n_words[has_words]) - n_words[has_words]
            lens[has_words] = np.add.reduceat(word_lens, starts)
        whole = np.flatnonzero(~has_words)
        if len(whole) == 0:
            return tokens, lens
        encs = self._tok.encode_batch_fast([texts[i] for i in whole], add_special_tokens=False)
        other = [np.asarray(e.ids, dtype=np.int64) for e in encs]
        lens[whole] = [len(x) for x in other]
        per_line = np.split(tokens, np.cumsum(lens[has_words])[:-1]) if len(words) else []
        out: list[np.ndarray] = [np.zeros(0, np.int64)] * len(texts)
        for i, x in zip(np.flatnonzero(has_words).tolist(), per_line, strict=True):
            out[i] = x
        for i, x in zip(whole.tolist(), other, strict=True):
            out[i] = x
        return np.concatenate(out) if out else np.zeros(0, np.int64), lens

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; special ids (PAD, BOS, EOS, UNK) are skipped, none stops decoding."""
        return self._tok.decode(_int_list(ids), skip_special_tokens=True)

    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
        """:meth:`decode` for many sequences at once."""
        return self._tok.decode_batch([_int_list(ids) for ids in batch], skip_special_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        return self._tok.id_to_token(i)

    def __repr__(self) -> str:
        return f"BpeTokenizer({str(self.path)!r}, vocab_size={self.vocab_size})"


class _WordTable:
    """Ids of each distinct word (encoded as " " + word), stored flat for numpy gathers."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.flat = np.zeros(1 << 16, dtype=np.int64)  # ids of all words, capacity-doubled
        self.offsets = np.zeros(1 << 12, dtype=np.int64)  # (words + 1,) start of each word
        self.n_flat = 0

    def lookup(self, words: list[str], tok: Tokenizer) -> np.ndarray:
        """Table row of each word (n,); words not seen before are encoded first."""
        if len(self.index) > _WORD_CACHE_MAX:
            self.__init__()
        new = sorted(set(words).difference(self.index))
        if new:
            ids = [e.ids for e in tok.encode_batch_fast(new, add_special_tokens=False)]
            lens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            first, total = len(self.index), int(lens.sum())
            self.flat = _grow(self.flat, self.n_flat + total)
            self.flat[self.n_flat : self.n_flat + total] = np.fromiter(
                itertools.chain.from_iterable(ids), dtype=np.int64, count=total
            )
            self.offsets = _grow(self.offsets, first + len(new) + 1)
            self.offsets[first + 1 : first + len(new) + 1] = self.n_flat + np.cumsum(lens)
            self.n_flat += total
            self.index.update(zip(new, range(first, first + len(new)), strict=True))
        return np.fromiter(map(self.index.__getitem__, words), dtype=np.int64, count=len(words))

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ids of ``rows``, concatenated (total,), and ids per row (n,)."""
        starts = self.offsets[rows]
        lens = self.offsets[rows + 1] - starts
        total = int(lens.sum())
        pos = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)
        return self.flat[pos], lens


def _grow(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` with room for at least ``size`` items (capacity doubles; contents kept)."""
    if size <= len(a):
        return a
    out = np.zeros(max(size, 2 * len(a)), dtype=a.dtype)
    out[: len(a)] = a
    return out


def _int_list(ids: Iterable[int]) -> list[int]:
    if hasattr(ids, "tolist"):  # numpy arrays and torch tensors
        ids = ids.tolist()
    return [int(i) for i in ids]


def new_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE pipeline with the fixed special tokens (see module doc)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS[UNK]))
    tok.normalizer = normalizers.Prepend(" ")
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)])
    return tok


def is_single_spaced(line: str) -> bool:
    """Words joined by single spaces: no other whitespace, none at the ends.

    Every whitespace character but " " is of category Z* or Cc, so not printable.
    """
    return line.isprintable() and "  " not in line and line[:1] != " " != line[-1:]


def _training_texts(files: Sequence[Path], max_lines: int, join: int) -> Iterator[list[str]]:
    """Lists of texts for ``train_from_iterator`` from each file in turn (``max_lines`` per
    file, 0: all).

    Up to ``join`` single-spaced lines are joined by " " into one text: the byte-level
    pieces, and so the word counts BPE learns from, are the same (see
    :meth:`BpeTokenizer.encode_flat`), with less per-text overhead in ``tokenizers``.
    Other lines are passed as they are.
    """
    for path in files:
        batch: list[str] = []
        for line in iter_lines(path, max_lines):
            batch.append(line)
            if len(batch) == _TRAIN_BATCH_LINES:
                yield _joined(batch, join)
                batch = []
        if batch:
            yield _joined(batch, join)


def _joined(lines: list[str], join: int) -> list[str]:
    if join <= 1:
        return lines
    regular = [line for line in lines if is_single_spaced(line) and line]
    other = [line for line in lines if not (is_single_spaced(line) and line)]
    return [" ".join(regular[i : i + join]) for i in range(0, len(regular), join)] + other


def train_tokenizer(cfg: TokenizerConfig, clean: Path, out: Path, report: Path) -> dict[str, Any]:
    """Learn the shared BPE on ``clean/train.{en,de}``; write ``out`` and the ``report`` JSON.

    The corpus is streamed from the files (``cfg.max_train_lines`` lines per side, 0: all).
    Raises ConfigError when ``cfg.vocab_size`` is below the byte alphabet, DataError when the
    data cannot reach it (too few distinct pairs above ``cfg.min_frequency``).
    Returns the report dict.
    """
    from tokenizers import pre_tokenizers, trainers

    from aiayn.fsio import atomic_file, atomic_path, count_lines, require_inputs, sha256_file

    clean, out, report = Path(clean), Path(out), Path(report)
    train_files = [paths.clean_split("train", lang, clean) for lang in paths.LANGS]
    eval_files = [
        paths.clean_split(s, lang, clean) for s in ("dev", "test") for lang in paths.LANGS
    ]
    require_inputs(*train_files, *eval_files, stage="clean")

    n_lines = {}
    for lang, path in zip(paths.LANGS, train_files, strict=True):
        n = count_lines(path)
        n_lines[lang] = min(n, cfg.max_train_lines) if cfg.max_train_lines else n
    if not any(n_lines.values()):
        raise DataError(f"{train_files[0]} and {train_files[1]} are empty: nothing to learn BPE on")

    tok = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=sys.stderr.isatty(),  # its bar prints blank lines when piped
    )
    batches = _training_texts(train_files, cfg.max_train_lines, _TRAIN_JOIN_LINES)
    n_batches = sum(-(-n // _TRAIN_BATCH_LINES) for n in n_lines.values())
    tok.train_from_iterator(batches, trainer, length=n_batches)

    got = tok.get_vocab_size(with_added_tokens=True)
    if [tok.token_to_id(t) for t in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):
        raise AssertionError("special tokens did not get ids 0..3")  # a tokenizers change
    if got < cfg.vocab_size:
        raise DataError(
            f"tokenizer.vocab_size={cfg.vocab_size} is more than {train_files[0].parent}/train.* "
            f"can give: BPE ran out of pairs seen >= {cfg.min_frequency} times at {got} tokens; "
            f"set tokenizer.vocab_size <= {got} (or lower tokenizer.min_frequency)"
        )

    with atomic_path(out) as tmp:
        tok.save(str(tmp), pretty=False)
    bpe = load_tokenizer(out)
    result = {
        "vocab_size": bpe.vocab_size,
        "merges": bpe.vocab_size - MIN_VOCAB_SIZE,
        "min_frequency": cfg.min_frequency,
        "byte_level": True,
        "train_lines": n_lines,
        "sha256": sha256_file(out),
        **_eval_report(bpe, clean),
    }
    with atomic_file(report) as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")
    return result


def _eval_report(bpe: BpeTokenizer, clean: Path) -> dict[str, Any]:
    """Unknown-token fraction, tokens per word and round-trip failures on dev and test.

    The unknown fraction is 0 by construction (byte-level); it is measured, not assumed.
    """
    unk, tpw, failures = {}, {}, {}
    for split in ("dev", "test"):
        n_unk = n_tok = n_fail = 0
        tpw[split] = {}
        for lang in paths.LANGS:
            lines = list(iter_lines(paths.clean_split(split, lang, clean)))
            ids = bpe.encode_batch(lines)
            n_words = sum(len(line.split()) for line in lines)
            n_side = sum(len(x) for x in ids)
            n_tok += n_side
            n_unk += sum(x.count(UNK) for x in ids)
            n_fail += sum(d != s for d, s in zip(bpe.decode_batch(ids), lines, strict=True))
            tpw[split][lang] = round(n_side / n_words, 4) if n_words else 0.0
        unk[split] = n_unk / n_tok if n_tok else 0.0
        failures[split] = n_fail
    return {"unk_fraction": unk, "tokens_per_word": tpw, "roundtrip_failures": failures}


def load_tokenizer(path: str | os.PathLike) -> BpeTokenizer:
    """Load ``tokenizer.json`` written by :func:`train_tokenizer`; check its special ids."""
    from tokenizers import Tokenizer

    from aiayn.fsio import sha256_file

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"missing input {path} (run `dvc repro tokenize` first)")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: not a tokenizers JSON file ({first})") from None
    ids = [tok.token_to_id(t) for t in SPECIAL_TOKENS]
    if ids != list(range(len(SPECIAL_TOKENS))):
        want = ", ".join(f"{t}={i}" for i, t in enumerate(SPECIAL_TOKENS))
        raise DataError(f"{path}: special tokens must be {want}; got ids {ids}")
    return BpeTokenizer(tok, path, sha256_file(path))


def check_matches(
    bpe: BpeTokenizer, *, vocab_size: int, sha256: str | None, where: str | os.PathLike
) -> None:
    """Raise a DataError when ``bpe`` is not the tokenizer ``where`` was built with."""
    if bpe.vocab_size != vocab_size:
        raise DataError(
            f"{bpe.path} has vocab_size {bpe.vocab_size} but {where} was built with "
            f"{vocab_size}: rerun `dvc repro shard`"
        )
    if sha256 is not None and bpe.sha256 != sha256:
        raise DataError(
            f"{bpe.path} (sha256 {bpe.sha256[:12]}) is not the tokenizer {where} was built "
            f"with (sha256 {sha256[:12]}): rerun `dvc repro shard`"
        )
