"""The special tokens and their fixed ids (docs/design.md, "Special tokens"): the one owner.

The tokenizer puts them first in its vocabulary, the model pads with ``PAD``, the loss skips
it, and the decoder starts from ``BOS`` and stops at ``EOS``. Plain constants, no imports, so
that the model and the decoder need not import the ``tokenizers`` package to know them.
"""

from __future__ import annotations

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")  # by id

# Byte-level BPE holds the special tokens and the 256 byte symbols before any merge: the
# smallest vocabulary there is, so tokenizer.vocab_size may not be smaller (config.py refuses
# it with its line in params.yaml).
N_BYTES = 256
MIN_VOCAB_SIZE = len(SPECIAL_TOKENS) + N_BYTES
