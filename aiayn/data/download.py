"""Stage ``download``: the raw corpora in ``data/raw``, from the demo generator or WMT14.

Both sources first produce the *official extracted archive layout* (see
:mod:`aiayn.data.wmt14`) in a staging folder next to ``out``; :func:`finalize_raw` then turns
that layout into ``data/raw`` (one plain-text file per side per corpus, dev and test as
plain text, ``manifest.json``), checks line and segment counts, and replaces ``out``
atomically. Nothing half-done is ever left at ``out``.

WMT14 archives are fetched with the standard library only (urllib):

- the URL is the official one with ``http://www.statmt.org`` replaced by ``data.mirror``
  (``http://``, ``https://`` or ``file://``);
- the body streams into ``<cache>/<path>.part`` with a progress bar; an interrupted transfer
  resumes with an HTTP ``Range`` request (a server that answers ``200`` instead of ``206``
  ignored it, and the transfer restarts from byte 0);
- transient failures (connection refused/reset/closed early, timeouts, HTTP 5xx, 408, 429,
  and a transfer slower than ``data.min_speed`` bytes/s over any ``data.timeout`` seconds: a
  server trickling data) are retried ``data.retries`` times with exponential backoff;
  anything else (404, 403, a full disk, ...) fails at once;
- the checksum (sha256, or md5 where that is all that is published) is verified before the
  ``.part`` file is renamed into the cache; an archive without a published digest gets its
  sha256 recorded next to it (``<path>.sha256``) on first download and is checked against
  that record afterwards. A cached archive is used without any HTTP request;
- two runs sharing a cache take turns on ``<path>.lock``, which the holder removes when done.

Extraction reads each archive once, refuses the whole archive if any member has an absolute
path, a ``..`` component, is a link or a device/fifo (naming the member), and copies out only
the members the selected corpora need.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath

from aiayn import paths
from aiayn.config import DataConfig
from aiayn.data import wmt14
from aiayn.data.wmt14 import Archive, EvalSet, Registry, mirror_url
from aiayn.errors import ConfigError, DataError
from aiayn.fsio import atomic_dir, atomic_file, count_lines, ensure_writable_dir, read_lines

BACKOFF_BASE = 1.0  # seconds before the first retry; doubled for each further one
BACKOFF_MAX = 60.0
CHUNK = 1 << 20
USER_AGENT = "aiayn-download/0.1 (+python-urllib)"


def _log(msg: str) -> None:
    print(f"download: {msg}", file=sys.stderr, flush=True)


def _progress(**kwargs):
    from tqdm.auto import tqdm

    return tqdm(unit="B", unit_scale=True, unit_divisor=1024, mininterval=0.5, **kwargs)


# ----------------------------------------------------------------------------- entry point


def download(
    cfg: DataConfig,
    out: Path,
    *,
    registry: Registry | None = None,
    hf_rows: Mapping[str, int] | None = None,
) -> None:
    """Write ``out`` (``data/raw``) for ``cfg.source`` (``demo``, ``wmt14`` or ``hf``).

    ``registry`` defaults to :data:`aiayn.data.wmt14.WMT14` and ``hf_rows`` (the expected
    rows per split of ``data.source: hf``) to :data:`aiayn.data.hf.WMT14_ROWS`; tests pass
    tiny ones.
    """
    registry = registry or wmt14.WMT14
    out = Path(out)
    ensure_writable_dir(out.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    corpora, extra = list(cfg.corpora), {}
    try:
        if cfg.source == "demo":
            from aiayn.data.demo import generate_demo

            generate_demo(cfg.demo, staging, corpora)
            train_lines = None  # the demo's noise makes the raw size a generator detail
            dev_n, test_n = cfg.demo.dev_pairs, cfg.demo.test_pairs
        elif cfg.source == "wmt14":
            fetch_wmt14(cfg, staging, registry)
            train_lines = {c.name: c.lines for c in registry.select(cfg.corpora)}
            dev_n, test_n = registry.dev.segments, registry.test.segments
        elif cfg.source == "hf":
            from aiayn.data.hf import HF_LAYOUT, fetch_hf

            extra["hf"] = fetch_hf(cfg, staging, dict(hf_rows) if hf_rows else None)
            registry, corpora = HF_LAYOUT, list(HF_LAYOUT.corpora)
            train_lines, dev_n, test_n = None, None, None  # fetch_hf checked the row counts
        else:  # load_params already rejects this; a hand-built config might not
            raise ConfigError(f"data.source must be demo, wmt14 or hf; got {cfg.source!r}")
        finalize_raw(
            staging,
            out,
            source=cfg.source,
            corpora=corpora,
            registry=registry,
            train_lines=train_lines,
            dev_segments=dev_n,
            test_segments=test_n,
            max_train_pairs=cfg.max_train_pairs,
            sample_seed=cfg.sample_seed,
            extra=extra,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_wmt14(cfg: DataConfig, staging: Path, registry: Registry | None = None) -> None:
    """Download (or take from the cache) every archive needed and extract its members."""
    registry = registry or wmt14.WMT14
    cache = Path(cfg.cache_dir)
    for archive in registry.archives(cfg.corpora):
        path = fetch_archive(
            archive,
            cache,
            mirror=cfg.mirror,
            verify=cfg.verify_checksums,
            retries=cfg.retries,
            timeout=cfg.timeout,
            min_speed=cfg.min_speed,
        )
        extract_members(path, registry.members(archive, cfg.corpora), staging)


# ----------------------------------------------------------------------------- fetching


class _Transient(Exception):
    """A failure worth retrying (the message says what happened)."""


def fetch_archive(
    archive: Archive,
    cache: Path,
    *,
    mirror: str = wmt14.STATMT,
    verify: bool = True,
    retries: int = 5,
    timeout: float = 60.0,
    min_speed: int = 0,
) -> Path:
    """The verified archive at ``cache/<archive.path>``, downloaded only if not cached.

    Holds a lock on ``<path>.lock`` meanwhile, so two runs sharing a cache take turns.
    """
    final = Path(cache) / archive.path
    ensure_writable_dir(final.parent)
    url = mirror_url(archive, mirror)
    with _locked(final.with_name(final.name + ".lock")):
        return _fetch_locked(archive, final, url, verify, retries, timeout, min_speed)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX; elsewhere no lock), removed at the end.

    The holder deletes the file before it lets go, so a process that was waiting may hold
    a lock on a file no longer at ``path``: it then locks whatever is at ``path`` now.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    waited = False
    while True:
        with open(path, "a+b") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not waited:
                    _log(f"waiting for another process that holds {path}")
                    waited = True
                fcntl.flock(f, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                continue
            if not os.path.samestat(os.fstat(f.fileno()), current):
                continue
            try:
                yield
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            return  # closing the file releases the lock


def _fetch_locked(
    archive: Archive,
    final: Path,
    url: str,
    verify: bool,
    retries: int,
    timeout: float,
    min_speed: int,
) -> Path:
    if final.exists():
        if not verify:
            return final
        try:
            _verify(final, archive, url)
            return final
        except DataError as e:
            _log(f"cached {final} is not the expected file ({e}); downloading it again")
            final.unlink()
    part = final.with_name(final.name + ".part")
    _log(f"fetching {url}")
    _fetch_with_retries(
        url, part, retries=retries, timeout=timeout, min_speed=min_speed, size_hint=archive.size
    )
    if verify:
        try:
            _verify(part, archive, url)
        except DataError:
            part.unlink(missing_ok=True)
            raise
    os.replace(part, final)
    return final


def _record_path(final: Path) -> Path:
    return final.with_name(final.name + ".sha256")


def _verify(path: Path, archive: Archive, url: str) -> None:
    """Check ``path`` against the archive's digest (or the one recorded on first download).

    ``path`` is the ``.part`` file or the cached archive; the record lives next to the
    cached archive's final name.
    """
    final = path.with_name(path.name.removesuffix(".part"))
    record = _record_path(final)
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    got_sha, got_md5 = sha256.hexdigest(), md5.hexdigest()
    sizes = (
        f" ({size:,} bytes, expected {archive.size:,})"
        if archive.size is not None and size != archive.size
        else ""
    )
    if archive.sha256 is not None:
        if got_sha != archive.sha256:
            raise DataError(
                f"{url}: sha256 mismatch: got {got_sha}, expected {archive.sha256}{sizes}; "
                "the download was discarded (set data.verify_checksums: false only for a "
                "mirror of your own)"
            )
    elif archive.md5 is not None:
        if got_md5 != archive.md5:
            raise DataError(
                f"{url}: md5 mismatch: got {got_md5}, expected {archive.md5}{sizes}; "
                "the download was discarded"
            )
    elif record.exists():
        want = record.read_text(encoding="utf-8").split()[0] if record.stat().st_size else ""
        if got_sha != want:
            raise DataError(
                f"{url}: sha256 {got_sha} differs from the one recorded on first download "
                f"in {record} ({want}); delete {record} to accept the new file"
            )
    else:
        with atomic_file(record) as f:
            f.write(f"{got_sha}  {final.name}\n")
        _log(f"recorded sha256 {got_sha} of {final.name} in {record}")


def _fetch_with_retries(
    url: str, part: Path, *, retries: int, timeout: float, min_speed: int, size_hint: int | None
) -> None:
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout=timeout, min_speed=min_speed, size_hint=size_hint)
            return
        except _Transient as e:
            if attempt == retries:
                raise DataError(
                    f"{url}: giving up after {retries + 1} attempts: {e}; check the connection "
                    "or try another data.mirror (data.retries, data.timeout and "
                    "data.min_speed set the patience)"
                ) from None
            delay = min(BACKOFF_BASE * 2**attempt, BACKOFF_MAX)
            _log(f"{e}; retry {attempt + 1}/{retries} in {delay:g}s")
            time.sleep(delay)


class _SpeedGuard:
    """Ends a transfer (as transient) that got fewer than ``min_speed * window`` bytes in a
    window of ``window`` seconds: a server trickling data never trips a socket timeout."""

    def __init__(self, min_speed: int, window: float, clock=time.monotonic):
        self.min_speed, self.window, self.clock = min_speed, window, clock
        self.start, self.count = clock(), 0

    def update(self, n: int) -> None:
        self.count += n
        elapsed = self.clock() - self.start
        if elapsed < self.window:
            return
        if self.count < self.min_speed * self.window:
            raise _Transient(
                f"too slow: {self.count:,} bytes in {elapsed:.1f} s, below data.min_speed="
                f"{self.min_speed} bytes/s"
            )
        self.start, self.count = self.clock(), 0


def _transfer(
    url: str, part: Path, *, timeout: float, min_speed: int = 0, size_hint: int | None
) -> None:
    """One attempt: fetch ``url`` into ``part``, resuming from its current size."""
    if urllib.parse.urlsplit(url).scheme == "file":
        _copy_file_url(url, part)
        return
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            total = _content_range_total(e.headers.get("Content-Range", ""))
            if total == offset:
                return  # the partial file is already complete
            part.unlink()
            raise _Transient(f"HTTP 416 resuming at byte {offset:,}; restarting") from None
        if e.code >= 500 or e.code in (408, 429):
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise DataError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _Transient(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from None
    with resp:
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if offset and resp.status == 206:
            start = _content_range_start(resp.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()
                raise _Transient(f"server resumed at byte {start}, not {offset:,}; restarting")
            total = _content_range_total(resp.headers.get("Content-Range", ""))
            mode = "ab"
        else:
            if offset:
                _log(f"server ignored the Range request (HTTP {resp.status}); restarting")
            offset, mode = 0, "wb"
            total = length if length is not None else size_hint
        received = 0
        guard = _SpeedGuard(min_speed, timeout) if min_speed else None
        with (
            open(part, mode) as f,
            _progress(total=total, initial=offset, desc=part.name.removesuffix(".part")) as bar,
        ):
            while True:
                try:  # read1: what has arrived, so that a trickle is seen as one
                    chunk = resp.read1(CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    raise _Transient(
                        f"connection lost after {offset + received:,} bytes ({type(e).__name__})"
                    ) from None
                if not chunk:
                    break
                f.write(chunk)  # a full disk is no transient failure: it propagates
                received += len(chunk)
                bar.update(len(chunk))
                if guard:
                    guard.update(len(chunk))
        if length is not None and received < length:
            raise _Transient(
                f"connection closed after {offset + received:,} of {offset + length:,} bytes"
            )


_RANGE = re.compile(r"bytes\s+(\d+|\*)(?:-(\d+))?/(\d+|\*)")


def _content_range_start(header: str) -> int | None:
    m = _RANGE.match(header.strip())
    return int(m.group(1)) if m and m.group(1) != "*" else None


def _content_range_total(header: str) -> int | None:
    m = _RANGE.match(header.strip())
    return int(m.group(3)) if m and m.group(3) != "*" else None


def _copy_file_url(url: str, part: Path) -> None:
    """``file://`` mirror: copy the file (no resume needed; a failed copy restarts)."""
    src = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    if not src.is_file():
        raise DataError(f"{url}: no such file ({src})")
    with (
        open(src, "rb") as fin,
        open(part, "wb") as fout,
        _progress(total=src.stat().st_size, desc=src.name) as bar,
    ):
        while chunk := fin.read(CHUNK):
            fout.write(chunk)
            bar.update(len(chunk))


# ----------------------------------------------------------------------------- extraction


class _CountingReader:
    """A read-only file wrapper that advances a progress bar (compressed bytes read)."""

    def __init__(self, f, bar):
        self.f, self.bar = f, bar

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.bar.update(len(data))
        return data


def _unsafe(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` must not be extracted, or None if it is a plain file or folder."""
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "path contains '..'"
    if member.issym():
        return f"symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"hard link to {member.linkname!r}"
    if member.ischr() or member.isblk():
        return "device file"
    if member.isfifo():
        return "fifo"
    if not (member.isreg() or member.isdir()):
        return f"unsupported member type {member.type!r}"
    return None


def extract_members(archive: Path, members: Sequence[str], dest: Path) -> None:
    """Copy ``members`` of the tar archive ``archive`` to ``dest/<member>``.

    Reads the archive once (any compression tarfile knows). Every member is checked on the
    way; an unsafe one (see :func:`_unsafe`) is a DataError naming it, and so is a needed
    member that is missing or a corrupt archive.
    """
    archive, dest = Path(archive), Path(dest)
    needed = {str(PurePosixPath(m)) for m in members}
    found: set[str] = set()
    _log(f"extracting {', '.join(sorted(needed))} from {archive}")
    try:
        with (
            open(archive, "rb") as raw,
            _progress(total=archive.stat().st_size, desc=f"extract {archive.name}") as bar,
            tarfile.open(fileobj=_CountingReader(raw, bar), mode="r|*") as tar,
        ):
            for m in tar:
                why = _unsafe(m)
                if why:
                    raise DataError(f"{archive}: refusing unsafe member {m.name!r}: {why}")
                name = str(PurePosixPath(m.name))
                if name not in needed or not m.isreg():
                    continue
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None  # a regular file
                with src, open(target, "wb") as f:
                    shutil.copyfileobj(src, f, CHUNK)
                found.add(name)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(
            f"{archive}: corrupt or unreadable archive: {e}; delete {archive} to download it "
            "again (data.verify_checksums: true catches this before extracting)"
        ) from None
    missing = sorted(needed - found)
    if missing:
        raise DataError(
            f"{archive}: archive has no member {missing[0]} (another release?); delete "
            f"{archive} to download it again"
        )


# ----------------------------------------------------------------------------- data/raw


def _eval_set(staging: Path, es: EvalSet) -> tuple[list[str], list[str]]:
    """(English, German) segments of a dev/test set from the staging layout."""
    from aiayn.data.sgml import read_parallel_sgml

    for lang in paths.LANGS:
        if not (staging / es.member(lang)).is_file():
            raise DataError(f"{es.name}: {es.member(lang)} is missing from the extracted data")
    if es.sgml:
        return read_parallel_sgml(staging / es.en, staging / es.de, labels=(es.en, es.de))
    en = read_lines(staging / es.en, label=es.en, strip_cr=True)
    return en, read_lines(staging / es.de, label=es.de, strip_cr=True)


def _check_pair(name: str, en: str, de: str, n_en: int, n_de: int, want: int | None) -> None:
    if n_en != n_de:
        raise DataError(
            f"{name}: {en} has {n_en:,} lines but {de} has {n_de:,}; the sides must be "
            "line-aligned"
        )
    if want is not None and n_en != want:
        raise DataError(
            f"{name}: {en} and {de} have {n_en:,} lines, expected {want:,} "
            "(a truncated or different release?)"
        )


def _move_text(src: Path, dst: Path) -> int:
    """Move ``src`` to ``dst`` (same filesystem), end it with a newline, return its lines."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)
    size = dst.stat().st_size
    if size:
        with open(dst, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
    return count_lines(dst)


def finalize_raw(
    staging: Path,
    out: Path,
    *,
    source: str,
    corpora: Sequence[str],
    registry: Registry | None = None,
    train_lines: Mapping[str, int | None] | None = None,
    dev_segments: int | None = None,
    test_segments: int | None = None,
    max_train_pairs: int = 0,
    sample_seed: int = 1,
    extra: Mapping[str, object] | None = None,
) -> dict:
    """Turn the extracted layout in ``staging`` into ``out`` (``data/raw``); return the manifest.

    Training files are moved (``staging`` must be on the same filesystem as ``out``), so
    ``staging`` is consumed. Checks: every needed member exists; EN and DE line counts agree
    (per corpus, dev and test); counts equal ``train_lines[corpus]``, ``dev_segments`` and
    ``test_segments`` where given. Any failure is a DataError and leaves ``out`` untouched.
    Then, with ``max_train_pairs`` > 0, only a seeded random sample of that many training
    pairs is kept (:func:`sample_train`; the checks above apply to the files before it).
    ``extra``: more top-level manifest keys (``hf``: what identifies the dataset read).
    """
    registry = registry or wmt14.WMT14
    staging, out = Path(staging), Path(out)
    manifest: dict = {"source": source, "corpora": {}}
    with atomic_dir(out) as tmp:
        for c in registry.select(corpora):
            counts = {}
            for lang in paths.LANGS:
                src = staging / c.member(lang)
                if not src.is_file():
                    raise DataError(
                        f"{c.name}: {c.member(lang)} is missing from the extracted data"
                    )
                counts[lang] = _move_text(src, paths.raw_train(c.name, lang, tmp))
            want = (train_lines or {}).get(c.name)
            _check_pair(c.name, c.en, c.de, counts["en"], counts["de"], want)
            manifest["corpora"][c.name] = _entry(
                counts["en"], lambda lg, c=c: paths.raw_train(c.name, lg, Path())
            )
        if max_train_pairs:
            manifest["sample"] = sample_train(
                tmp, manifest["corpora"], max_train_pairs, sample_seed
            )
        for key, es, want, where in (
            ("dev", registry.dev, dev_segments, paths.raw_dev),
            ("test", registry.test, test_segments, paths.raw_test),
        ):
            en, de = _eval_set(staging, es)
            _check_pair(es.name, es.en, es.de, len(en), len(de), want)
            for lang, segs in (("en", en), ("de", de)):
                path = where(lang, tmp)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(s + "\n" for s in segs), encoding="utf-8")
            manifest[key] = {"name": es.name, **_entry(len(en), lambda lg, w=where: w(lg, Path()))}
        manifest.update(extra or {})
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    total = sum(v["lines"] for v in manifest["corpora"].values())
    _log(
        f"wrote {out}: {total:,} training pairs in {len(manifest['corpora'])} corpora, "
        f"dev {manifest['dev']['lines']:,}, test {manifest['test']['lines']:,}"
    )
    return manifest


def _entry(lines: int, path_of) -> dict:
    return {"lines": lines, **{lang: path_of(lang).as_posix() for lang in paths.LANGS}}


# ----------------------------------------------------------------------------- sampling


def sample_indices(total: int, k: int, seed: int):
    """``min(k, total)`` distinct pair indices in ``[0, total)``, sorted (int64 numpy): the
    first k of a permutation by NumPy's PCG64 seeded with ``seed``, so the same (total, k,
    seed) always gives the same sample, and a larger k keeps every pair a smaller one had."""
    import numpy as np

    rng = np.random.Generator(np.random.PCG64(seed))
    return np.sort(rng.permutation(total)[:k])


def sample_train(raw: Path, corpora: dict[str, dict], k: int, seed: int) -> dict:
    """Keep a random sample of ``k`` training pairs out of all of ``corpora`` (manifest
    entries, in order; their files relative to ``raw``), rewriting the files and the
    entries' ``lines``; returns the manifest's ``sample`` record.

    Pair ``i`` is the i-th line over the corpora concatenated in manifest order; a sampled
    pair keeps its place, so the files stay in their original order.
    """
    import numpy as np
    from tqdm.auto import tqdm

    before = {name: e["lines"] for name, e in corpora.items()}
    total = sum(before.values())
    record = {
        "max_train_pairs": k,
        "seed": seed,
        "pairs_before": total,
        "lines_before": before,
        "pairs": min(k, total),
    }
    if k >= total:
        _log(f"data.max_train_pairs {k:,} >= the {total:,} training pairs: keeping them all")
        return record
    keep = np.zeros(total, dtype=bool)
    keep[sample_indices(total, k, seed)] = True
    _log(f"sampling {k:,} of {total:,} training pairs (data.sample_seed {seed})")
    offset = 0
    with tqdm(total=2 * total, desc="sample", unit=" lines", unit_scale=True) as bar:
        for entry in corpora.values():
            n = entry["lines"]
            mask = keep[offset : offset + n].tolist()
            for lang in paths.LANGS:
                _keep_lines(raw / entry[lang], mask)
                bar.update(n)
            entry["lines"] = sum(mask)
            offset += n
    return record


def _keep_lines(path: Path, mask: list[bool]) -> None:
    """Rewrite ``path`` with only the lines whose ``mask`` entry is true."""
    tmp = path.with_name(path.name + ".sample")
    with open(path, "rb") as fin, open(tmp, "wb") as fout:
        fout.writelines(line for line, keep in zip(fin, mask, strict=True) if keep)
    os.replace(tmp, path)
