"""``data.source: hf`` (WMT14 through Hugging Face ``datasets``) and ``data.max_train_pairs``.

Everything runs offline: the tests build small datasets in the Hub's parquet layout (a
snapshot of the ``wmt/wmt14`` repository: ``README.md`` with its configs and
``de-en/<split>-0000i-of-0000n.parquet`` files of ``{"translation": {"de", "en"}}`` rows),
and ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` keep ``datasets`` off the network.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from test_download import _staging

from aiayn import paths
from aiayn.config import DataConfig, DemoConfig
from aiayn.data.clean import clean
from aiayn.data.download import download, finalize_raw, sample_indices
from aiayn.data.hf import CORPUS
from aiayn.data.wmt14 import WMT14
from aiayn.errors import ConfigError, DataError


def readme(configs: list[str]) -> str:
    """The dataset card's YAML header of the Hub repository: one entry per config."""
    entries = "".join(
        f"- config_name: {c}\n  data_files:\n"
        + "".join(f"  - split: {s}\n    path: {c}/{s}-*\n" for s in ("train", "validation", "test"))
        for c in configs
    )
    return f"---\nconfigs:\n{entries}---\n# a local snapshot of a WMT14-like dataset\n"


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test here may reach the network; datasets' cache lives in the test's folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-home" / "datasets"))
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-home" / "datasets")


def _words(rng: random.Random, n: int) -> str:
    vocab = "house cat tree river city light stone green small quick old new".split()
    return " ".join(rng.choice(vocab) for _ in range(n))


def make_pairs(seed: int, n: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    en = [_words(rng, rng.randint(2, 9)) for _ in range(n)]
    de = [f"{s} auf Deutsch" for s in en]
    return en, de


def write_hub(
    root: Path,
    train: tuple[list[str], list[str]],
    dev: tuple[list[str], list[str]],
    test: tuple[list[str], list[str]],
    *,
    shards: int = 2,
    config: str = "de-en",
) -> Path:
    """``root`` as a snapshot of the Hub repository: README.md + ``config/*.parquet``."""
    import datasets

    features = datasets.Features({"translation": datasets.Translation(languages=["de", "en"])})
    (root / config).mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(readme(sorted(p.name for p in root.iterdir() if p.is_dir())))
    for split, (en, de), n in (("train", train, shards), ("validation", dev, 1), ("test", test, 1)):
        rows = [{"de": d, "en": e} for e, d in zip(en, de, strict=True)]
        step = -(-len(rows) // n)
        for i in range(n):
            part = {"translation": rows[i * step : (i + 1) * step]}
            ds = datasets.Dataset.from_dict(part, features=features)
            ds.to_parquet(str(root / config / f"{split}-{i:05d}-of-{n:05d}.parquet"))
    return root


@pytest.fixture
def hub(tmp_path) -> tuple[Path, dict]:
    data = {"train": make_pairs(1, 50), "dev": make_pairs(2, 6), "test": make_pairs(3, 7)}
    return write_hub(tmp_path / "hub", data["train"], data["dev"], data["test"]), data


def _cfg(**kw) -> DataConfig:
    return DataConfig(**{"source": "hf", "hf_check_sizes": False, **kw})


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def _assert_raw(out: Path, data: dict) -> dict:
    for lang, i in (("en", 0), ("de", 1)):
        assert _lines(paths.raw_train(CORPUS, lang, out)) == data["train"][i]
        assert _lines(paths.raw_dev(lang, out)) == data["dev"][i]
        assert _lines(paths.raw_test(lang, out)) == data["test"][i]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == "hf"
    assert manifest["corpora"] == {
        CORPUS: {"lines": len(data["train"][0]), "en": "train/hf.en", "de": "train/hf.de"}
    }
    assert manifest["dev"]["name"] == "newstest2013" and manifest["test"]["name"] == "newstest2014"
    assert manifest["hf"]["rows"] == {
        "train": len(data["train"][0]),
        "validation": len(data["dev"][0]),
        "test": len(data["test"][0]),
    }
    assert set(manifest["hf"]["fingerprints"]) == {"train", "validation", "test"}
    return manifest


# ----------------------------------------------------------------------------- the sources


def test_parquet_folder(tmp_path, hub):
    root, data = hub
    out = tmp_path / "raw"
    download(_cfg(hf_path=str(root)), out)
    manifest = _assert_raw(out, data)
    assert manifest["hf"]["path"] == str(root) and manifest["hf"]["name"] is None
    assert len(manifest["hf"]["revision"]) >= 16  # datasets' hash of the parquet files
    # the same files give the same fingerprints and revision; other contents other ones
    download(_cfg(hf_path=str(root)), tmp_path / "raw2")
    again = json.loads((tmp_path / "raw2" / "manifest.json").read_text())
    assert again["hf"] == manifest["hf"]
    other = write_hub(tmp_path / "hub2", make_pairs(9, 50), data["dev"], data["test"])
    download(_cfg(hf_path=str(other)), tmp_path / "raw3")
    third = json.loads((tmp_path / "raw3" / "manifest.json").read_text())
    assert third["hf"]["fingerprints"]["train"] != manifest["hf"]["fingerprints"]["train"]


def test_parquet_export_layout_without_readme(tmp_path, hub):
    """The Hub's parquet export (``de-en/<split>/0000.parquet``), no README needed."""
    root, data = hub
    flat = tmp_path / "export" / "de-en"
    for f in sorted((root / "de-en").glob("*.parquet")):
        split, rest = f.name.split("-", 1)
        (flat / split).mkdir(parents=True, exist_ok=True)
        (flat / split / f"{int(rest[:5]):04d}.parquet").write_bytes(f.read_bytes())
    download(_cfg(hf_path=str(tmp_path / "export")), tmp_path / "raw")
    _assert_raw(tmp_path / "raw", data)


def test_save_to_disk_folder(tmp_path, hub):
    import datasets

    root, data = hub
    dd = datasets.load_dataset(str(root), "de-en")
    dd.save_to_disk(str(tmp_path / "saved"))
    download(_cfg(hf_path=str(tmp_path / "saved")), tmp_path / "raw")
    manifest = _assert_raw(tmp_path / "raw", data)
    assert manifest["hf"]["revision"] is None
    saved = datasets.load_from_disk(str(tmp_path / "saved"))
    assert manifest["hf"]["fingerprints"] == {s: saved[s]._fingerprint for s in saved}


def test_by_name_reads_the_named_config(tmp_path, hub):
    """hf_name + hf_config go through the Hub code path of datasets; a local repository
    folder stands in for the Hub here, with a second config that must not be read."""
    root, data = hub
    write_hub(root, make_pairs(7, 20), make_pairs(8, 3), make_pairs(9, 3), config="fr-en")
    assert "config_name: fr-en" in (root / "README.md").read_text()
    download(_cfg(hf_name=str(root), hf_config="de-en"), tmp_path / "raw")
    manifest = _assert_raw(tmp_path / "raw", data)
    assert manifest["hf"]["name"] == str(root) and manifest["hf"]["config"] == "de-en"


def test_hub_unreachable_is_one_line(tmp_path):
    with pytest.raises(DataError) as e:
        download(_cfg(hf_name="wmt/wmt14"), tmp_path / "raw")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("wmt/wmt14 (de-en): cannot reach the Hugging Face Hub")
    assert "data.hf_path" in msg
    assert not (tmp_path / "raw").exists()


# ----------------------------------------------------------------------------- checks


def test_row_counts_are_checked_before_writing(tmp_path, hub):
    root, data = hub
    out = tmp_path / "raw"
    with pytest.raises(DataError) as e:
        download(_cfg(hf_path=str(root), hf_check_sizes=True), out)
    assert str(e.value) == (
        f"data.hf_path {root}, split train: has 50 rows, WMT14 de-en has 4,508,785; set "
        "data.hf_check_sizes: false to accept a subset on purpose (or data.max_train_pairs "
        "to sample the full set)"
    )
    assert not out.exists()
    assert not list(tmp_path.glob(".raw.staging-*"))
    # the counts of a full copy pass (here: the test's own "full" sizes)
    rows = {"train": 50, "validation": 6, "test": 7}
    download(_cfg(hf_path=str(root), hf_check_sizes=True), out, hf_rows=rows)
    _assert_raw(out, data)
    with pytest.raises(DataError, match=r"split test: has 7 rows, WMT14 de-en has 3,003"):
        download(_cfg(hf_path=str(root), hf_check_sizes=True), out, hf_rows={**rows, "test": 3003})


@pytest.mark.parametrize(
    "setup, error",
    [
        ("missing", r"data\.hf_path: .*nowhere is not a folder; give a folder of the Hub's"),
        ("no-test", r"data\.hf_path: no test parquet files in .*; download the dataset's"),
        ("columns", r"split train: needs a 'translation' column with 'de' and 'en' \(columns: "),
    ],
)
def test_bad_local_copies(tmp_path, hub, setup, error):
    import datasets

    root, _ = hub
    if setup == "missing":
        root = tmp_path / "nowhere"
    elif setup == "no-test":
        (root / "de-en" / "test-00000-of-00001.parquet").unlink()
    else:
        for f in (root / "de-en").glob("*.parquet"):
            datasets.Dataset.from_dict({"text": ["x"]}).to_parquet(str(f))
    with pytest.raises((DataError, ConfigError), match=error):
        download(_cfg(hf_path=str(root)), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_line_breaks_inside_segments_become_spaces(tmp_path):
    en, de = ["one\nline", "two", "three\n\nlines"], ["eins", "zwei\n", "drei"]
    root = write_hub(tmp_path / "hub", (en, de), (["d"], ["d"]), (["t"], ["t"]), shards=1)
    download(_cfg(hf_path=str(root)), tmp_path / "raw")
    assert _lines(paths.raw_train(CORPUS, "en", tmp_path / "raw")) == [
        "one line",
        "two",
        "three  lines",
    ]
    assert _lines(paths.raw_train(CORPUS, "de", tmp_path / "raw")) == ["eins", "zwei ", "drei"]
    manifest = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert manifest["hf"]["newlines_replaced"] == 4


def test_hf_takes_all_three_corpora(tmp_path):
    from aiayn.config import dump_params, load_params

    p = load_params(paths.PARAMS)
    p.data.source = "hf"
    p.data.corpora = ["europarl-v7"]
    f = tmp_path / "params.yaml"
    f.write_text(dump_params(p))
    with pytest.raises(ConfigError, match=r"data\.corpora must list all three corpora with data"):
        load_params(f)


# ----------------------------------------------------------------------------- sampling


SIZES = {"europarl-v7": 300, "commoncrawl": 500, "news-commentary-v9": 200}


def _sampled(tmp_path: Path, name: str, k: int, seed: int) -> tuple[dict, dict[str, list[str]]]:
    staging = _staging(tmp_path / f"staging-{name}", WMT14, n=SIZES)
    out = tmp_path / name
    manifest = finalize_raw(
        staging,
        out,
        source="demo",
        corpora=list(SIZES),
        train_lines=SIZES,
        max_train_pairs=k,
        sample_seed=seed,
    )
    lines = {f"{c}.{lg}": _lines(paths.raw_train(c, lg, out)) for c in SIZES for lg in paths.LANGS}
    return manifest, lines


def test_sample_is_seeded_aligned_and_in_order(tmp_path):
    manifest, lines = _sampled(tmp_path, "a", 100, seed=5)
    assert sum(e["lines"] for e in manifest["corpora"].values()) == 100
    assert manifest["sample"] == {
        "max_train_pairs": 100,
        "seed": 5,
        "pairs_before": 1000,
        "lines_before": SIZES,
        "pairs": 100,
    }
    picked = []
    offset = 0
    for c, n in SIZES.items():
        en, de = lines[f"{c}.en"], lines[f"{c}.de"]
        assert manifest["corpora"][c]["lines"] == len(en) == len(de)
        idx = [int(s.rsplit(" ", 1)[1]) for s in en]
        assert idx == sorted(idx) and len(set(idx)) == len(idx)  # original order, no repeats
        assert de == [f"{c} de {i}" for i in idx]  # still aligned
        picked += [offset + i for i in idx]
        offset += n
    assert picked == sample_indices(1000, 100, 5).tolist()
    # every corpus is represented roughly in proportion (a uniform sample over all pairs)
    for c, n in SIZES.items():
        assert abs(manifest["corpora"][c]["lines"] - n / 10) < n / 10 * 0.6
    # same seed: the same sample; another seed: another one
    assert _sampled(tmp_path, "b", 100, seed=5)[1] == lines
    assert _sampled(tmp_path, "c", 100, seed=6)[1] != lines


def test_larger_sample_keeps_a_smaller_one():
    small, big = set(sample_indices(1000, 50, 3).tolist()), set(sample_indices(1000, 200, 3))
    assert small <= big and len(small) == 50 and len(big) == 200


def test_sample_of_everything_keeps_everything(tmp_path):
    manifest, lines = _sampled(tmp_path, "all", 5000, seed=1)
    assert {c: e["lines"] for c, e in manifest["corpora"].items()} == SIZES
    assert lines["commoncrawl.en"] == [f"commoncrawl en {i}" for i in range(500)]
    assert manifest["sample"]["pairs"] == 1000


def test_line_counts_are_checked_before_sampling(tmp_path):
    staging = _staging(tmp_path / "staging", WMT14, n=SIZES)
    with pytest.raises(DataError, match=r"commoncrawl: .* have 500 lines, expected 2,399,123"):
        finalize_raw(
            staging,
            tmp_path / "raw",
            source="wmt14",
            corpora=list(SIZES),
            train_lines={**SIZES, "commoncrawl": 2_399_123},
            max_train_pairs=10,
        )
    assert not (tmp_path / "raw").exists()


def test_every_source_honours_max_train_pairs(tmp_path, hub):
    root, data = hub
    download(_cfg(hf_path=str(root), max_train_pairs=20, sample_seed=2), tmp_path / "hf")
    en = _lines(paths.raw_train(CORPUS, "en", tmp_path / "hf"))
    keep = sample_indices(50, 20, 2).tolist()
    assert en == [data["train"][0][i] for i in keep]
    assert _lines(paths.raw_dev("en", tmp_path / "hf")) == data["dev"][0]  # never sampled

    demo = DemoConfig(train_pairs=300, dev_pairs=5, test_pairs=5, noise=0.0)
    download(DataConfig(source="demo", demo=demo), tmp_path / "full")
    download(DataConfig(source="demo", demo=demo, max_train_pairs=40), tmp_path / "demo")
    full = json.loads((tmp_path / "full" / "manifest.json").read_text())
    part = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    assert sum(e["lines"] for e in part["corpora"].values()) == 40
    assert part["sample"]["pairs_before"] == sum(e["lines"] for e in full["corpora"].values())
    for c in part["corpora"]:
        sub = _lines(paths.raw_train(c, "en", tmp_path / "demo"))
        assert set(sub) <= set(_lines(paths.raw_train(c, "en", tmp_path / "full")))
    # (wmt14: tests/test_download.py checks the same finalize_raw path with its mirror)


# ----------------------------------------------------------------------------- the pipeline


def _noisy_corpus() -> tuple[dict, tuple, tuple]:
    """Three corpora with what clean filters (duplicates across corpora, HTML, copies, bad
    ratios, dev/test contamination, empty sides), dev and test with SGML-special characters."""
    dev = (["The dev & <one>", "dev two"], ["Das Dev & <eins>", "Dev zwei"])
    test = (["test & one", 'test <two> "3"'], ["Test & eins", "Test <zwei> „3“"])
    ep = make_pairs(11, 40)
    cc = make_pairs(12, 30)
    nc = make_pairs(13, 20)
    cc[0][3], cc[1][3] = ep[0][5], ep[1][5]  # a duplicate across corpora
    cc[0][4], cc[1][4] = "a <b>bold</b> &amp; word", "ein <b>fettes</b> &amp; Wort"
    cc[0][5], cc[1][5] = "same text", "same text"  # an untranslated copy
    nc[0][2], nc[1][2] = "short", "ein viel zu langer Satz mit vielen Wörtern hier"
    nc[0][3], nc[1][3] = dev[0][1], "kontaminiert"
    ep[0][7], ep[1][7] = "", "leer"
    train = {"europarl-v7": ep, "commoncrawl": cc, "news-commentary-v9": nc}
    return train, dev, test


def _clean_dir(proj: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((proj / "data" / "clean").iterdir())}


@pytest.mark.slow
def test_dvc_repro_clean_on_hf_equals_the_statmt_path(tmp_path):
    """``dvc repro clean`` with data.source: hf on a local parquet copy; its data/clean is
    byte for byte what the statmt path gives for the same pairs."""
    from dvc_support import env, run
    from test_download import build_mirror
    from test_pipeline_e2e import make_project

    from aiayn.config import load_params

    train, dev, test = _noisy_corpus()
    hf_train = tuple(sum((train[c][i] for c in paths.CORPORA), []) for i in (0, 1))
    hub = write_hub(tmp_path / "hub", hf_train, dev, test, shards=3)
    overrides = {"data": {"source": "hf", "hf_path": str(hub), "hf_check_sizes": False}}
    proj = make_project(tmp_path, overrides)
    e = env()
    e.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"))
    run(["dvc", "repro", "clean"], proj, env=e)
    manifest = json.loads((proj / "data" / "raw" / "manifest.json").read_text())
    assert manifest["source"] == "hf" and manifest["hf"]["rows"]["train"] == 90
    report = json.loads((proj / "reports" / "data.json").read_text())
    assert list(report["corpora"]) == [CORPUS]  # one mixed corpus instead of three

    # The statmt path: the same pairs as the three corpora's archives on a file:// mirror.
    mirror = build_mirror(data=(train, dev, test))
    cfg = DataConfig(
        source="wmt14",
        mirror=mirror.write(tmp_path / "mirror").as_uri(),
        cache_dir=str(tmp_path / "cache"),
    )
    raw = tmp_path / "statmt" / "raw"
    download(cfg, raw, registry=mirror.registry)
    statmt_report = clean(
        load_params(proj / "params.yaml").clean,
        raw,
        tmp_path / "statmt" / "clean",
        tmp_path / "d.json",
        tmp_path / "d.md",
    )
    ours = _clean_dir(proj)
    theirs = {p.name: p.read_bytes() for p in sorted((tmp_path / "statmt" / "clean").iterdir())}
    assert ours == theirs
    assert report["total"] == statmt_report["total"]
    assert report["total"]["dropped_total"] >= 6  # the filters really ran
