"""``data.source: hf``: WMT14 English-German through Hugging Face ``datasets``.

The Hub's ``wmt/wmt14`` dataset (config ``de-en``; ``wmt14`` is its old name) holds the same
data as the statmt.org archives: europarl-v7, commoncrawl and news-commentary-v9 mixed into
one ``train`` split of 4,508,785 rows (11,835 fewer than the statmt files' 4,520,620
lines: the Hub's conversion left some pairs out), ``validation`` = newstest2013 (3,000) and
``test`` = newstest2014 (3,003), each row ``{"translation": {"de": ..., "en": ...}}``.

:func:`fetch_hf` reads it with ``datasets`` (``load_dataset_builder`` ->
``download_and_prepare`` -> ``as_dataset``, the three steps of ``datasets.load_dataset``,
kept apart so the builder's resolved revision can be recorded) from one of:

- the Hub by name (``data.hf_name``, ``data.hf_config``, ``data.hf_revision``);
- a folder saved by ``DatasetDict.save_to_disk`` (it holds ``dataset_dict.json``);
- a folder of the Hub's parquet files (``data.hf_path``): a snapshot of the dataset
  repository (``de-en/train-00000-of-00003.parquet``, ...), the Hub's parquet export
  (``de-en/train/0000.parquet``) or the split files on their own, read with the ``parquet``
  builder.

It writes the splits as plain text into a staging folder (the layout of :data:`HF_LAYOUT`),
which :func:`aiayn.data.download.finalize_raw` turns into ``data/raw`` like every other
source. The Hub cannot tell the three corpora apart, so the training pairs go to one corpus,
:data:`CORPUS` (``data/raw/train/hf.{en,de}``), and ``reports/data.json`` reports that one
corpus instead of three. A line break inside a segment would shift every later line, so
each one is replaced by a space (and counted in the manifest).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiayn.data.wmt14 import Corpus, EvalSet, Registry
from aiayn.errors import ConfigError, DataError

if TYPE_CHECKING:
    from aiayn.config import DataConfig

CORPUS = "hf"  # the one training corpus of data.source: hf
SPLITS = {"train": "train", "dev": "validation", "test": "test"}  # ours -> the dataset's
# WMT14 de-en on the Hub (dataset card of wmt/wmt14): rows per split.
WMT14_ROWS = {"train": 4_508_785, "validation": 3_000, "test": 3_003}
BATCH_ROWS = 20_000

# The staging layout fetch_hf writes, as a registry finalize_raw understands.
HF_LAYOUT = Registry(
    corpora={CORPUS: Corpus(CORPUS, None, en="hf/train.en", de="hf/train.de", lines=None)},
    dev=EvalSet("newstest2013", None, en="hf/validation.en", de="hf/validation.de", segments=None),
    test=EvalSet("newstest2014", None, en="hf/test.en", de="hf/test.de", segments=None),
)


def _log(msg: str) -> None:
    print(f"download: {msg}", file=sys.stderr, flush=True)


def fetch_hf(cfg: DataConfig, staging: Path, expected: dict[str, int] | None = None) -> dict:
    """Read the dataset ``cfg`` names and write :data:`HF_LAYOUT` into ``staging``.

    ``expected``: rows per split (default :data:`WMT14_ROWS`), checked before anything is
    written unless ``cfg.hf_check_sizes`` is false. Returns what the manifest records:
    ``{"name" (Hub id, or None for hf_path), "config", "path", "revision" (the Hub commit,
    a hash of local parquet files, None for save_to_disk), "fingerprints": {split:
    datasets' fingerprint}, "rows": {split: n}, "newlines_replaced"}``.
    """
    splits, info = load_splits(cfg)
    check_rows(cfg, {s: len(ds) for s, ds in splits.items()}, expected or WMT14_ROWS)
    replaced = 0
    for split in SPLITS.values():
        replaced += write_split(splits[split], staging / "hf" / split, where(cfg, split))
    if replaced:
        _log(f"replaced {replaced:,} line break(s) inside segments by spaces")
    info["rows"] = {s: len(splits[s]) for s in SPLITS.values()}
    info["newlines_replaced"] = replaced
    return info


def where(cfg: DataConfig, split: str | None = None) -> str:
    """The dataset as error messages name it: ``data.hf_path /x`` or ``wmt/wmt14 (de-en)``."""
    name = f"data.hf_path {cfg.hf_path}" if cfg.hf_path else f"{cfg.hf_name} ({cfg.hf_config})"
    return f"{name}, split {split}" if split else name


def load_splits(cfg: DataConfig) -> tuple[dict[str, Any], dict]:
    """The train/validation/test ``datasets.Dataset``s and the facts that identify them."""
    import datasets

    info: dict = {
        "name": None if cfg.hf_path else cfg.hf_name,
        "config": cfg.hf_config,
        "path": cfg.hf_path or None,
    }
    if cfg.hf_path:
        root = Path(cfg.hf_path)
        if not root.is_dir():
            raise ConfigError(
                f"data.hf_path: {root} is not a folder; give a folder of the Hub's parquet "
                'files or one written by save_to_disk, or set it to "" to read '
                f"{cfg.hf_name} from the Hub"
            )
        if (root / "dataset_dict.json").is_file():
            dd = _guard(cfg, lambda: datasets.load_from_disk(str(root)))
            info["revision"] = None  # a saved dataset has no revision; its fingerprints say it
        else:
            files = parquet_files(root, cfg.hf_config)
            dd, info["revision"] = _build(cfg, "parquet", data_files=files)
    else:
        dd, info["revision"] = _build(
            cfg, cfg.hf_name, name=cfg.hf_config, revision=cfg.hf_revision
        )
    if not isinstance(dd, datasets.DatasetDict):
        raise DataError(f"{where(cfg)}: not a dataset with splits (a DatasetDict)")
    for split in SPLITS.values():
        if split not in dd:
            raise DataError(
                f"{where(cfg)}: has no {split!r} split (it has {', '.join(dd) or 'none'}); "
                "WMT14 has train, validation and test"
            )
        _check_features(cfg, split, dd[split])
    info["fingerprints"] = {s: dd[s]._fingerprint for s in SPLITS.values()}
    return {s: dd[s] for s in SPLITS.values()}, info


def _build(cfg: DataConfig, path: str, **kwargs) -> tuple[Any, str | None]:
    """``datasets.load_dataset(path, **kwargs)`` and the builder's hash: the Hub commit the
    revision resolved to, or for local files a hash of them."""
    import datasets

    def load():
        builder = datasets.load_dataset_builder(path, **kwargs)
        builder.download_and_prepare()
        return builder.as_dataset(), builder.hash

    return _guard(cfg, load)


def _guard(cfg: DataConfig, load):
    """Run ``load``; what ``datasets`` raises becomes one line naming the dataset and the
    way out (datasets' own messages can span lines)."""
    try:
        return load()
    except (DataError, ConfigError):
        raise
    except ConnectionError as e:
        raise DataError(
            f"{where(cfg)}: cannot reach the Hugging Face Hub ({_first_line(e)}); check the "
            "network (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE must be unset), or set "
            "data.hf_path to a local copy"
        ) from None
    except Exception as e:  # datasets raises many types (FileNotFoundError, ValueError, ...)
        raise DataError(f"{where(cfg)}: cannot be loaded: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def parquet_files(root: Path, config: str) -> dict[str, list[str]]:
    """Parquet files per split under ``root`` (or ``root/<config>`` when it exists), in
    either Hub layout: ``<split>-00000-of-00003.parquet`` or ``<split>/0000.parquet``."""
    base = root / config if (root / config).is_dir() else root
    files: dict[str, list[str]] = {}
    for split in SPLITS.values():
        found = sorted(
            {*base.glob(f"{split}-*.parquet"), *base.glob(f"{split}.parquet")}
            | set(base.glob(f"{split}/*.parquet"))
        )
        if not found:
            raise DataError(
                f"data.hf_path: no {split} parquet files in {base} (looked for "
                f"{split}-*.parquet and {split}/*.parquet); download the dataset's "
                f"{config}/ folder there"
            )
        files[split] = [str(p) for p in found]
    return files


def _check_features(cfg: DataConfig, split: str, ds) -> None:
    """Every split must have a ``translation`` column of ``{de, en}`` strings."""
    feat = ds.features.get("translation")
    langs = set(getattr(feat, "languages", None) or getattr(feat, "keys", lambda: [])())
    if feat is None or not {"en", "de"} <= langs:
        raise DataError(
            f"{where(cfg, split)}: needs a 'translation' column with 'de' and 'en' "
            f"(columns: {', '.join(ds.column_names)}); is {cfg.hf_config!r} the de-en config?"
        )


def check_rows(cfg: DataConfig, rows: dict[str, int], expected: dict[str, int]) -> None:
    """Row counts against ``expected`` (unless ``data.hf_check_sizes`` is false); empty dev
    or test sets are errors either way."""
    for split, n in rows.items():
        if split != "train" and n == 0:
            raise DataError(f"{where(cfg, split)}: is empty")
        want = expected.get(split)
        if cfg.hf_check_sizes and want is not None and n != want:
            raise DataError(
                f"{where(cfg, split)}: has {n:,} rows, WMT14 de-en has {want:,}; set "
                "data.hf_check_sizes: false to accept a subset on purpose (or "
                "data.max_train_pairs to sample the full set)"
            )


def write_split(ds, stem: Path, label: str) -> int:
    """``stem.en`` and ``stem.de``: one segment per line; returns line breaks replaced."""
    import pyarrow.compute as pc
    from tqdm.auto import tqdm

    stem.parent.mkdir(parents=True, exist_ok=True)
    replaced = 0
    row = 0
    with (
        open(stem.with_suffix(".en"), "w", encoding="utf-8", newline="\n") as fe,
        open(stem.with_suffix(".de"), "w", encoding="utf-8", newline="\n") as fd,
        tqdm(total=len(ds), desc=stem.name, unit=" rows", unit_scale=True, mininterval=0.5) as bar,
    ):
        for table in ds.with_format("arrow").iter(batch_size=BATCH_ROWS):
            col = table.column("translation")
            for lang, f in (("en", fe), ("de", fd)):
                texts = pc.struct_field(col, lang).to_pylist()
                if None in texts:
                    bad = row + texts.index(None)
                    raise DataError(f"{label}: row {bad:,} has no {lang!r} text")
                lines = []
                for s in texts:
                    if "\n" in s:
                        replaced += s.count("\n")
                        s = s.replace("\n", " ")
                    lines.append(s)
                f.write("\n".join(lines) + "\n" if lines else "")
            row += table.num_rows
            bar.update(table.num_rows)
    return replaced
