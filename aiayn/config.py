"""Typed parameters: ``params.yaml`` loaded into dataclasses, one section per stage.

Every key of every section must be present (DVC tracks them one by one, and ``dvc params
diff`` should show real values), unknown keys are errors, and so are wrong types and
out-of-range values. Errors name the file, the line, the dotted key and the value::

    params.yaml:65: train.warmup_steps must be >= 1; got 0

The dataclass defaults are the paper's Transformer-base recipe on WMT14; the repository's
``params.yaml`` holds the small offline demo configuration.
"""

from __future__ import annotations

import dataclasses
import difflib
import reprlib
import types
import urllib.parse
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

from aiayn import paths
from aiayn.errors import ConfigError
from aiayn.vocab import MIN_VOCAB_SIZE

SearchRules = Literal["t2t", "fairseq"]  # beam search rules (aiayn.decode.search)


def param(default: Any = dataclasses.MISSING, *, help: str = "", **checks: Any) -> Any:
    """A dataclass field with a help text and range checks.

    checks: ``ge``, ``gt``, ``le``, ``lt`` (numbers), ``choices`` (allowed values, also for
    list items), ``unique`` (list items distinct), ``nonempty`` (list not empty), ``why``
    (the reason for a bound, shown in its error).
    """
    meta = {"help": help, **checks}
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


class ParamError(ConfigError):
    """A value that breaks a rule of its params section. ``key`` is dotted from the top of
    params.yaml (``translate.nbest``); the loader puts the file and line in front of it."""

    def __init__(self, key: str, msg: str):
        super().__init__(f"{key} {msg}")
        self.key, self.msg = key, msg


class Section:
    """Base of the params sections: building one, from params.yaml or by code, checks every
    field against its :func:`param` bounds and then the section's own rules (:meth:`check`),
    raising :class:`ParamError`. A section is valid from the moment it exists."""

    KEY: ClassVar[str] = ""  # where the section sits in params.yaml ("data.demo")

    def __post_init__(self) -> None:
        for name, tp, meta in _fields(type(self)):
            _check_value(tp, getattr(self, name), self.key(name), meta)
        self.check()

    @classmethod
    def key(cls, name: str) -> str:
        """The dotted params.yaml key of field ``name``."""
        return f"{cls.KEY}.{name}" if cls.KEY else name

    def check(self) -> None:
        """Rules that span fields of the section (none by default)."""


@cache
def _fields(cls: type) -> tuple[tuple[str, Any, dict], ...]:
    """(name, type, metadata) of each field of a section class."""
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name], dict(f.metadata)) for f in dataclasses.fields(cls))


def _check_value(tp: Any, value: Any, key: str, meta: dict) -> None:
    """The bounds of one field: a Literal's choices, list rules, ``ge``/``gt``/``le``/``lt``
    and ``choices`` (:func:`param`). Types are the loader's job (:func:`_convert`)."""
    if dataclasses.is_dataclass(tp) or value is None:
        return  # a nested section checked itself
    if get_origin(tp) is Literal:
        if value not in get_args(tp):
            choices = ", ".join(map(str, get_args(tp)))
            raise ParamError(key, f"must be one of {choices}; got {_show(value)}")
        return
    if isinstance(value, list):
        if meta.get("nonempty") and not value:
            raise ParamError(key, "must not be empty")
        for v in value if "choices" in meta else ():
            if v not in meta["choices"]:
                choices = ", ".join(meta["choices"])
                raise ParamError(key, f"has unknown item {_show(v)}; choose from {choices}")
        if meta.get("unique") and len(set(value)) != len(value):
            dup = next(v for v in value if value.count(v) > 1)
            raise ParamError(key, f"lists {_show(dup)} twice")
        return
    for check, op, text in (
        ("ge", lambda a, b: a >= b, ">="),
        ("gt", lambda a, b: a > b, ">"),
        ("le", lambda a, b: a <= b, "<="),
        ("lt", lambda a, b: a < b, "<"),
    ):
        if check in meta and not op(value, meta[check]):
            why = f" ({meta['why']})" if "why" in meta else ""
            raise ParamError(key, f"must be {text} {meta[check]}{why}; got {_show(value)}")
    if "choices" in meta and value not in meta["choices"]:
        raise ParamError(key, f"must be one of {', '.join(map(str, meta['choices']))}")


def check_nbest(nbest: int, beam_size: int) -> None:
    """The rule linking ``translate.nbest`` to ``translate.beam_size``: a beam of ``k`` keeps
    at most ``k`` finished hypotheses. Also for the search's raw arguments."""
    if nbest < 1:
        raise ParamError("translate.nbest", f"must be >= 1; got {nbest}")
    if nbest > beam_size:
        raise ParamError(
            "translate.nbest", f"must be <= translate.beam_size={beam_size}; got {nbest}"
        )


# ----------------------------------------------------------------------------- sections


@dataclass
class DemoConfig(Section):
    """The seeded synthetic EN->DE mini-language (``data.source: demo``)."""

    KEY: ClassVar[str] = "data.demo"

    seed: int = param(2017, help="generator seed; same seed, same corpus, byte for byte")
    train_pairs: int = param(60000, ge=10, help="clean training pairs over the three corpora")
    dev_pairs: int = param(500, ge=1, help="newstest2013-like dev set size")
    test_pairs: int = param(1000, ge=1, help="newstest2014-like test set size")
    noise: float = param(0.05, ge=0.0, le=0.5, help="fraction of extra noisy training pairs")


@dataclass
class DataConfig(Section):
    """``download``: where the raw corpora come from."""

    KEY: ClassVar[str] = "data"

    source: Literal["demo", "wmt14", "hf"] = param(
        "wmt14", help="demo (offline), wmt14 (statmt.org archives) or hf (Hugging Face datasets)"
    )
    corpora: list[str] = param(
        list(paths.CORPORA),
        choices=paths.CORPORA,
        unique=True,
        nonempty=True,
        help="training corpora (hf: all three; the Hub dataset mixes them)",
    )
    mirror: str = param("http://www.statmt.org", help="replaces http://www.statmt.org in URLs")
    verify_checksums: bool = param(True, help="check sha256/md5 of downloaded archives")
    cache_dir: str = param(".cache/wmt14", help="archive cache, outside DVC outputs")
    retries: int = param(5, ge=0, help="retries per download on transient failures")
    timeout: float = param(60.0, gt=0, help="socket timeout in seconds")
    min_speed: int = param(
        1024,
        ge=0,
        help="bytes/s a download must average over each data.timeout seconds, else it is "
        "retried (a server trickling data); 0: off",
    )
    hf_name: str = param("wmt/wmt14", help="hf: dataset on the Hugging Face Hub (read by name)")
    hf_config: str = param("de-en", help="hf: the dataset's config (language pair)")
    hf_revision: str = param("main", help="hf: Hub branch, tag or commit to read")
    hf_path: str = param(
        "", help="hf: a local copy instead of the Hub: parquet folder or save_to_disk folder"
    )
    hf_check_sizes: bool = param(
        True, help="hf: rows must be WMT14 de-en's (4,508,785/3,000/3,003); false: any subset"
    )
    max_train_pairs: int = param(
        0, ge=0, help="keep a seeded random sample of this many training pairs (0: all)"
    )
    sample_seed: int = param(1, help="seed of the max_train_pairs sample")
    demo: DemoConfig = field(default_factory=DemoConfig)

    def check(self) -> None:
        if self.source == "hf" and sorted(self.corpora) != sorted(paths.CORPORA):
            raise ParamError(
                "data.corpora",
                "must list all three corpora with data.source: hf (the Hugging Face dataset "
                f"mixes them and cannot select one); got {self.corpora}, or use data.source: "
                "wmt14",
            )
        problem = _url_problem(self.mirror)
        if problem:
            raise ParamError("data.mirror", f"{problem}; got {_show(self.mirror)}")


@dataclass
class CleanConfig(Section):
    """``clean``: per-pair filters, deduplication and dev/test decontamination."""

    KEY: ClassVar[str] = "clean"

    recipe: Literal["filtered", "paper"] = param(
        "filtered",
        help="filtered: normalise and filter with the keys below; paper: the paper's data as "
        "downloaded (whitespace collapsed, pairs with an empty side dropped, nothing else; "
        "the only limit is shard.max_tokens_per_side), the keys below unused",
    )
    strip_html: bool = param(
        True, help="remove HTML tags, then unescape HTML entities (before the other steps)"
    )
    unicode_nfc: bool = param(True, help="Unicode NFC normalisation")
    remove_control: bool = param(True, help="remove control and zero-width characters")
    collapse_whitespace: bool = param(True, help="collapse runs of whitespace, strip ends")
    min_words: int = param(1, ge=0, help="minimum words per side")
    max_words: int = param(250, ge=1, help="maximum words per side")
    max_ratio: float = param(1.5, ge=1.0, help="maximum word-length ratio between sides")
    drop_copies: bool = param(True, help="drop pairs whose source equals the target")
    dedup: bool = param(True, help="exact pair deduplication across all corpora")
    decontaminate: bool = param(True, help="drop pairs with a side found in dev or test")
    lang_filter: bool = param(False, help="drop pairs whose sides look like the wrong language")
    lang_margin: int = param(
        2, ge=1, help="lang_filter: other-language function words must outnumber own by this"
    )
    workers: int = param(0, ge=0, help="worker processes (0: all cores)")

    def check(self) -> None:
        if self.min_words > self.max_words:
            raise ParamError(
                "clean.min_words",
                f"must be <= clean.max_words={self.max_words}; got {self.min_words}",
            )


@dataclass
class TokenizerConfig(Section):
    """``tokenize``: one BPE model shared by English and German."""

    KEY: ClassVar[str] = "tokenizer"

    vocab_size: int = param(
        37000,
        ge=MIN_VOCAB_SIZE,
        le=1_000_000,
        why="byte-level BPE needs the 4 special tokens and the 256 bytes",
        help="BPE vocabulary incl. specials",
    )
    min_frequency: int = param(2, ge=1, help="minimum pair frequency for a merge")
    max_train_lines: int = param(0, ge=0, help="lines per side used to learn BPE (0: all)")


@dataclass
class ShardConfig(Section):
    """``shard``: BPE-encoded, length-sorted token-id tensors."""

    KEY: ClassVar[str] = "shard"

    max_tokens_per_side: int = param(256, ge=2, help="drop pairs longer than this after BPE")
    workers: int = param(0, ge=0, help="encoding worker threads (0: all cores)")


@dataclass
class ModelConfig(Section):
    """The Transformer (section 3 of the paper). Defaults: Transformer base, Table 3."""

    KEY: ClassVar[str] = "model"

    encoder_layers: int = param(6, ge=1, help="N for the encoder")
    decoder_layers: int = param(6, ge=1, help="N for the decoder")
    d_model: int = param(512, ge=8, help="model width")
    d_ff: int = param(2048, ge=1, help="inner size of the position-wise feed-forward")
    n_heads: int = param(
        8, ge=1, help="attention heads h; d_model must divide by h unless d_k and d_v are set"
    )
    d_k: int = param(0, ge=0, help="query and key size per head (0: d_model / n_heads)")
    d_v: int = param(0, ge=0, help="value size per head (0: d_model / n_heads)")
    dropout: float = param(0.1, ge=0.0, lt=1.0, help="P_drop on sub-layer outputs, embeddings")
    attention_dropout: float = param(0.0, ge=0.0, lt=1.0, help="dropout on attention weights")
    activation_dropout: float = param(0.0, ge=0.0, lt=1.0, help="dropout after the FFN ReLU")
    norm: Literal["post", "pre"] = param("post", help="post-norm (paper) or pre-norm")
    tie_embeddings: bool = param(True, help="one matrix: src/tgt embeddings + softmax weights")
    positional: Literal["sinusoidal", "learned"] = param(
        "sinusoidal", help="sinusoidal encodings (3.5) or learned position embeddings"
    )
    max_positions: int = param(1024, ge=2, help="longest sequence the position table covers")

    @property
    def head_dims(self) -> tuple[int, int]:
        """(d_k, d_v) per head: ``d_k``/``d_v`` when set, else d_model / n_heads (3.2.2)."""
        even = self.d_model // self.n_heads
        return self.d_k or even, self.d_v or even

    @property
    def heads_divide(self) -> bool:
        """Whether the head sizes are set or n_heads divides d_model (else no d_k/d_v)."""
        return bool(self.d_k and self.d_v) or self.d_model % self.n_heads == 0

    def check(self) -> None:
        if not self.heads_divide:
            raise ParamError(
                "model.n_heads",
                f"must divide model.d_model={self.d_model}; got {self.n_heads} (or set both "
                "model.d_k and model.d_v, whose 0 means d_model / n_heads)",
            )


@dataclass
class TrainConfig(Section):
    """``train``: the paper's recipe (section 5) on any hardware."""

    KEY: ClassVar[str] = "train"

    seed: int = param(1, help="seed for weights, dropout and batch order")
    max_steps: int = param(100000, ge=1, help="optimizer steps")
    tokens_per_step: int = param(25000, ge=1, help="tokens per side per optimizer step")
    max_tokens: int = param(4096, ge=1, help="padded tokens per side per micro-batch per device")
    lr_scale: float = param(1.0, gt=0, help="factor on d_model^-0.5 * min(s^-0.5, s*w^-1.5)")
    warmup_steps: int = param(4000, ge=1, help="warmup_steps of equation (3)")
    adam_beta1: float = param(0.9, ge=0.0, lt=1.0)
    adam_beta2: float = param(0.98, ge=0.0, lt=1.0)
    adam_eps: float = param(1e-9, gt=0.0)
    weight_decay: float = param(0.0, ge=0.0)
    label_smoothing: float = param(0.1, ge=0.0, lt=1.0, help="epsilon_ls")
    clip_norm: float = param(0.0, ge=0.0, help="gradient clipping max norm (0: off)")
    precision: Literal["auto", "mixed", "fp32", "fp16", "bf16"] = param("auto")
    compile: bool = param(False, help="torch.compile the model")
    device: Literal["auto", "cpu", "cuda"] = param("auto")
    threads: int = param(0, ge=0, help="CPU threads for torch (0: torch's default)")
    nproc: int = param(1, ge=1, help="processes per node; >1 launches torchrun DDP")
    save_every: int = param(
        1250, ge=1, help="checkpoint every this many steps (the grid average takes from)"
    )
    save_every_minutes: float = param(
        0.0, ge=0.0, help="also checkpoint every N minutes, for resuming only (0: off)"
    )
    keep_last: int = param(
        5, ge=1, help="grid checkpoints kept on disk (plus the newest if off the grid)"
    )
    eval_every: int = param(1000, ge=0, help="dev loss every this many steps (0: off)")
    log_every: int = param(100, ge=1, help="log training metrics every this many steps")


@dataclass
class AverageConfig(Section):
    """``average``: mean of the last checkpoints (paper: 5 for base, 20 for big)."""

    KEY: ClassVar[str] = "average"

    last: int = param(5, ge=1, help="number of last train.save_every checkpoints to average")


@dataclass
class TranslateConfig(Section):
    """``translate``: beam search (section 6.1)."""

    KEY: ClassVar[str] = "translate"

    beam_size: int = param(4, ge=1, help="beam width (1: greedy)")
    search_rules: SearchRules = param(
        "t2t",
        help="beam search rules: t2t (the paper's: </s> from any of the 2k candidates, stop "
        "when no live hypothesis can beat the worst finished one) or fairseq (stop at k "
        "finished)",
    )
    length_penalty: float = param(0.6, ge=0.0, help="alpha of the GNMT length penalty")
    max_len_a: float = param(1.0, ge=0.0, help="max output length = a * source length + b")
    max_len_b: int = param(50, ge=0, help="max output length = a * source length + b")
    coverage_penalty: float = param(0.0, ge=0.0, help="beta of the GNMT coverage penalty")
    nbest: int = param(1, ge=1, help="hypotheses kept per sentence (only the best is scored)")
    max_tokens: int = param(4096, ge=1, help="source tokens per decoding batch")
    device: Literal["auto", "cpu", "cuda"] = param("auto")
    precision: Literal["auto", "mixed", "fp32", "fp16", "bf16"] = param("auto")

    def check(self) -> None:
        check_nbest(self.nbest, self.beam_size)


@dataclass
class ScoreConfig(Section):
    """``score``: sacreBLEU and the paper-comparable tokenized BLEU."""

    KEY: ClassVar[str] = "score"

    tokenize: Literal["13a", "intl", "none"] = param("13a", help="sacreBLEU tokenizer")
    lowercase: bool = param(False, help="case-insensitive sacreBLEU")


@dataclass
class Params(Section):
    """All of ``params.yaml``."""

    KEY: ClassVar[str] = ""

    data: DataConfig = field(default_factory=DataConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    average: AverageConfig = field(default_factory=AverageConfig)
    translate: TranslateConfig = field(default_factory=TranslateConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def check(self) -> None:
        """Rules that span sections."""
        longest = self.shard.max_tokens_per_side
        if self.average.last > self.train.keep_last:
            raise ParamError(
                "average.last",
                f"must be <= train.keep_last={self.train.keep_last} (the save_every "
                f"checkpoints kept on disk); got {self.average.last}: raise train.keep_last "
                "or lower average.last",
            )
        if self.train.max_tokens < longest:
            raise ParamError(
                "train.max_tokens",
                f"must be >= shard.max_tokens_per_side={longest} so the longest pair fits a "
                f"batch; got {self.train.max_tokens}",
            )
        if self.translate.max_tokens < longest:
            raise ParamError(
                "translate.max_tokens",
                f"must be >= shard.max_tokens_per_side={longest}; "
                f"got {self.translate.max_tokens}",
            )
        if self.model.max_positions < longest + 1:
            raise ParamError(
                "model.max_positions",
                f"must be >= shard.max_tokens_per_side + 1 = {longest + 1}; "
                f"got {self.model.max_positions}",
            )


# ----------------------------------------------------------------------------- loading


class _Where:
    """Maps dotted keys to line numbers of a YAML document, for error messages."""

    def __init__(self, file: str, lines: dict[str, int] | None = None):
        self.file = file
        self.lines = lines or {}

    def __call__(self, key: str) -> str:
        # Fall back to the closest enclosing key that has a line.
        k = key
        while k:
            if k in self.lines:
                return f"{self.file}:{self.lines[k]}"
            k = k.rpartition(".")[0]
        return self.file

    def error(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self(key)}: {key} {msg}")


def _yaml_lines(
    node: Any, file: str, prefix: str = "", out: dict[str, int] | None = None, path=()
) -> dict[str, int]:
    """{dotted key: line} of a composed YAML document; a key given twice in one mapping is
    a ConfigError naming both lines (PyYAML would keep the last one silently; DVC refuses
    such a file). ``path``: the mappings above ``node`` (an alias back to one of them, a
    mapping that contains itself, is not followed)."""
    import yaml

    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode) and node not in path:
        seen: dict[str, int] = {}
        for k, v in node.value:
            line = k.start_mark.line + 1
            name = str(k.value)
            key = f"{prefix}{name}"
            if name in seen and name != "<<":
                raise ConfigError(
                    f"{file}:{line}: {key} is given twice (lines {seen[name]} and {line}); "
                    "keep one"
                )
            seen[name] = line
            out[key] = line
            _yaml_lines(v, file, key + ".", out, (*path, node))
    return out


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlevel = 80, 80, 3
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = _REPR.maxset = 6


def _show(v: Any) -> str:
    """A value for an error message, on one line and short (a huge or recursive value is
    elided)."""
    if isinstance(v, str | list | dict | tuple | set):
        return _REPR.repr(v)
    text = str(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(tp: Any) -> str:
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    return str(tp)


def _convert(tp: Any, value: Any, key: str, where: _Where) -> Any:
    """``value`` as type ``tp`` (a ConfigError for the wrong type); its bounds are the
    section's to check (:class:`Section`)."""
    origin = get_origin(tp)
    if origin is Literal:
        return value  # its choices are a bound, checked by the section (_check_value)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, key, where)
    if origin is list:
        (item_tp,) = get_args(tp)
        if not isinstance(value, list):
            raise where.error(key, f"must be a list; got {_show(value)}")
        return [_convert(item_tp, v, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise where.error(key, f"must be true or false; got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise where.error(key, f"must be an integer; got {_show(value)}")
    elif tp is float:
        if isinstance(value, str):  # PyYAML reads 1e-9 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise where.error(key, f"must be a number; got {_show(value)}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise where.error(key, f"must be a number; got {_show(value)}")
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            raise where.error(key, f"must be a string; got {_show(value)}")
    return value


def _build(cls: type, data: Any, prefix: str, where: _Where) -> Any:
    if not isinstance(data, dict):
        raise where.error(prefix, f"must be a mapping of keys to values; got {_show(data)}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    dotted = (prefix + ".") if prefix else ""
    for k in data:
        if k not in known:
            close = difflib.get_close_matches(str(k), known, n=1)
            hint = f" (did you mean {dotted}{close[0]}?)" if close else ""
            raise where.error(f"{dotted}{k}", f"is not a known key{hint}")
    kwargs = {}
    for name in known:
        key = f"{dotted}{name}"
        if name not in data:
            raise ConfigError(f"{where(prefix) if prefix else where.file}: missing key {key}")
        kwargs[name] = _convert(hints[name], data[name], key, where)
    try:
        return cls(**kwargs)  # the section checks its bounds and rules (Section)
    except ParamError as e:
        raise where.error(e.key, e.msg) from None


def _url_problem(url: str) -> str | None:
    """What is wrong with a mirror URL (None if nothing)."""
    example = "like http://www.statmt.org or file:///srv/statmt"
    try:
        u = urllib.parse.urlsplit(url)
        u.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as e:
        return f"is not a valid URL ({e}), {example}"
    if u.scheme not in ("http", "https", "file"):
        return f"must start with http://, https:// or file://, {example}"
    if u.scheme != "file" and not u.hostname:
        return f"names no host, {example}"
    if u.scheme == "file" and not u.path.strip("/"):
        return f"names no folder, {example}"
    if any(c.isspace() for c in url):
        return f"must not contain spaces, {example}"
    return None


def params_from_dict(
    data: Any, file: str = "<params>", lines: dict[str, int] | None = None
) -> Params:
    """Build and validate :class:`Params` from a parsed YAML mapping."""
    where = _Where(file, lines)
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: must be a YAML mapping of sections; got {_show(data)}")
    return _build(Params, data, "", where)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate ``params.yaml``; raise :class:`ConfigError` naming what is wrong."""
    data, lines = read_yaml(path)
    if data is None:
        raise ConfigError(f"{path}: params file is empty")
    return params_from_dict(data, str(path), lines)


def read_yaml(path: str | Path) -> tuple[Any, dict[str, int]]:
    """The parsed YAML of a params file and ``{dotted key: line}``.

    ConfigError (one line, naming the file and line) for a missing, unreadable or non-UTF-8
    file, malformed YAML, or a key given twice in one mapping.
    """

    from aiayn.fsio import utf8_error

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a params file") from None
    except UnicodeDecodeError:
        raise ConfigError(str(utf8_error(path))) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read params file: {e.strerror}") from None
    return read_yaml_text(text, str(path))


def read_yaml_text(text: str, file: str) -> tuple[Any, dict[str, int]]:
    """:func:`read_yaml` of ``text`` already read (errors name it ``file``)."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        lines = _yaml_lines(node, file) if node is not None else {}
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{file}{line}: malformed YAML: {problem}") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{file}: unreadable YAML value: {str(e)[:100]}") from None
    return data, lines


def to_dict(obj: Any) -> dict:
    """A plain nested dict of a params dataclass (for JSON, YAML and fingerprints)."""
    return dataclasses.asdict(obj)


def dump_params(params: Params) -> str:
    """``params`` as YAML text in section order (no comments)."""
    import yaml

    return yaml.safe_dump(to_dict(params), sort_keys=False, default_flow_style=None)


def fingerprint(*objs: Any, exclude: tuple[str, ...] = ()) -> str:
    """A stable sha256 of dataclasses/dicts/strings, leaving out top-level ``exclude`` keys."""
    import hashlib
    import json

    parts = []
    for o in objs:
        d = to_dict(o) if dataclasses.is_dataclass(o) else o
        if isinstance(d, dict):
            d = {k: v for k, v in d.items() if k not in exclude}
        parts.append(d)
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def describe(cls: type = Params, prefix: str = "") -> list[tuple[str, str, Any]]:
    """(dotted key, help, default) for every parameter, for docs and ``--help`` output."""
    rows = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            rows += describe(hints[f.name], key + ".")
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((key, f.metadata.get("help", ""), default))
    return rows
