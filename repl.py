"""Interactive use: ``python -i repl.py`` in the project folder.

Loads the latest trained model and its tokenizer if they exist (the averaged model in
``data/model``, else the newest checkpoint in ``data/checkpoints``) and offers:

    tr("An English sentence.")   translate (beam and length penalty from params.yaml)
    tr([...], beam_size=1)       several sentences; any translate.* param as a keyword
    att("An English sentence.")  translate it and draw its attention (reports/attention/);
                                 att("...", kind="cross", layer=1): kind enc, dec or cross
    params()                     total and trainable parameter counts
    rf()                         reload the aiayn modules after an edit, then the model

``model``, ``tokenizer`` and ``translator`` are left in the namespace for poking around.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

model = tokenizer = translator = None
source = None  # where the loaded model came from


def _load() -> None:
    """(Re)load the latest model and tokenizer into the module namespace."""
    global model, tokenizer, translator, source
    from aiayn import paths
    from aiayn.decode.translator import Translator

    model = tokenizer = translator = source = None
    model_dir = ROOT / paths.MODEL
    if (model_dir / "model.json").exists():
        translator = Translator.load(model_dir, device="auto")
        source = model_dir
    else:
        translator, source = _from_latest_checkpoint()
    if translator is not None:
        model, tokenizer = translator.model, translator.tokenizer
        print(f"loaded {source}")
    else:
        print("no trained model yet (run `dvc repro train` or `make demo`); tr() is unavailable")


def _from_latest_checkpoint():
    """A Translator over the newest checkpoint, or (None, None) if there is none."""
    from aiayn import paths
    from aiayn.checkpoint import list_checkpoints, load_checkpoint
    from aiayn.config import ModelConfig
    from aiayn.decode.translator import Translator
    from aiayn.model import Transformer
    from aiayn.tokenizer import load_tokenizer

    ckpt_dir, tok_path = ROOT / paths.CHECKPOINTS, ROOT / paths.TOKENIZER
    found = list_checkpoints(ckpt_dir) if ckpt_dir.is_dir() else []
    if not found or not tok_path.exists():
        return None, None
    step, path = found[-1]
    ckpt = load_checkpoint(path, resume=False)  # the weights only
    net = Transformer(ModelConfig(**ckpt["model_config"]), ckpt["vocab_size"])
    net.load_state_dict(ckpt["model"])
    return Translator(net.eval(), load_tokenizer(tok_path)), path


def _translate_config(**overrides):
    from aiayn.config import TranslateConfig, load_params

    params_file = ROOT / "params.yaml"
    cfg = load_params(params_file).translate if params_file.exists() else TranslateConfig()
    return dataclasses.replace(cfg, **overrides)


def tr(text: str | list[str], **overrides) -> str | list[str]:
    """Translate one sentence (returns a string) or a list of sentences (returns a list)."""
    if translator is None:
        raise RuntimeError("no model loaded: train one first (make demo), then rf()")
    lines = [text] if isinstance(text, str) else list(text)
    out = translator.translate(lines, _translate_config(**overrides))
    return out[0] if isinstance(text, str) else out


def att(
    text: str, kind: str = "enc", layer: int | None = None, out_dir: str | None = None, **overrides
) -> Path:
    """Translate one sentence and write its attention picture (``aiayn attention``): the heads
    of ``layer`` (1-based, default the last) and each layer's mean over heads, for ``kind``
    enc (encoder self-attention), dec (decoder self-attention) or cross (encoder-decoder).
    Returns the PNG's path (under ``reports/attention/`` unless ``out_dir`` is given)."""
    if translator is None:
        raise RuntimeError("no model loaded: train one first (make demo), then rf()")
    from aiayn.attention_plot import OUT_DIR, picture

    folder = ROOT / OUT_DIR if out_dir is None else Path(out_dir)
    cfg = _translate_config(**overrides)
    path, maps = picture(translator, text, cfg, kind, layer, folder)
    print(f"{maps.sentence} -> {maps.translation}\n{path}")
    return path


def params() -> tuple[int, int]:
    """Print and return (total, trainable) parameter counts of the loaded model."""
    if model is None:
        raise RuntimeError("no model loaded")
    from aiayn.model import count_parameters

    total, trainable = count_parameters(model)
    print(f"parameters: {total:,} total, {trainable:,} trainable")
    return total, trainable


def rf() -> None:
    """Reload every aiayn module (after editing the code), then the model."""
    names = sorted(n for n in sys.modules if n == "aiayn" or n.startswith("aiayn."))
    for name in names:
        importlib.reload(sys.modules[name])
    print(f"reloaded {len(names)} modules")
    _load()


_load()
if translator is not None:
    print('try: tr("The new president said that the economy is growing.")  att("...")  rf()')
