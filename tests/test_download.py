"""The ``download`` stage against a local HTTP server that serves archives in the official
WMT14 layout (tiny contents), with Range support and injected failures."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import http.server
import importlib.util
import io
import json
import random
import re
import sys
import tarfile
import tempfile
import threading
import time
from collections import defaultdict, deque
from pathlib import Path

import pytest

from aiayn import paths
from aiayn.config import DataConfig
from aiayn.data import download as dl
from aiayn.data.download import download, extract_members, finalize_raw
from aiayn.data.sgml import write_sgml
from aiayn.data.wmt14 import WMT14, Archive, Registry, mirror_url
from aiayn.errors import DataError

ROOT = Path(__file__).resolve().parent.parent

# ----------------------------------------------------------------------------- test data

WORDS = "house cat tree river city light stone green small quick old new".split()


def _lines(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(n)]


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _text(lines: list[str]) -> bytes:
    return "".join(s + "\n" for s in lines).encode()


@dataclasses.dataclass
class Mirror:
    """Tiny archives in the official layout, and a registry whose digests match them."""

    files: dict[str, bytes]  # archive path (relative to the statmt root) -> bytes
    registry: Registry
    train: dict[str, tuple[list[str], list[str]]]
    dev: tuple[list[str], list[str]]
    test: tuple[list[str], list[str]]

    def write(self, root: Path) -> Path:
        for rel, data in self.files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        return root


def build_mirror(
    *,
    europarl_de_lines: int | None = None,
    test_src: bytes | None = None,
    extra_members: dict[str, dict[str, bytes]] | None = None,
    data: tuple[dict, tuple, tuple] | None = None,
) -> Mirror:
    """``data``: (train {corpus: (en, de)} for all three, dev (en, de), test (en, de)) to
    serve instead of the default random lines."""
    n_ep, n_cc, n_nc, n_dev, n_test = 3000, 40, 30, 12, 15
    train = {
        "europarl-v7": (_lines(1, n_ep), _lines(2, n_ep)),
        "commoncrawl": (_lines(3, n_cc), _lines(4, n_cc)),
        "news-commentary-v9": (_lines(5, n_nc), _lines(6, n_nc)),
    }
    dev = (_lines(7, n_dev), _lines(8, n_dev))
    test = ([f"source & <segment> {i}" for i in range(n_test)], _lines(9, n_test))
    if data is not None:
        train, dev, test = data
        n_dev, n_test = len(dev[0]), len(test[0])
    members: dict[str, dict[str, bytes]] = defaultdict(dict)
    for name, (en, de) in train.items():
        c = WMT14.corpora[name]
        de_out = de[: europarl_de_lines or len(de)] if name == "europarl-v7" else de
        members[c.archive.path][c.en] = _text(en)
        members[c.archive.path][c.de] = _text(de_out)
    # Another language pair in the same archive: must not be extracted.
    members[WMT14.corpora["europarl-v7"].archive.path]["training/europarl-v7.fr-en.fr"] = b"x\n"
    members[WMT14.dev.archive.path][WMT14.dev.en] = _text(dev[0])
    members[WMT14.dev.archive.path][WMT14.dev.de] = _text(dev[1])
    sgm = {}
    with tempfile.TemporaryDirectory() as d:
        for kind, segs in (("src", test[0]), ("ref", test[1])):
            f = Path(d) / f"{kind}.sgm"
            docs = [("doc-a", segs[:7]), ("doc-b", segs[7:])] if len(segs) > 7 else [("d", segs)]
            write_sgml(f, docs, setid="newstest2014", kind=kind)
            sgm[kind] = f.read_bytes()
    members[WMT14.test.archive.path][WMT14.test.en] = test_src or sgm["src"]
    members[WMT14.test.archive.path][WMT14.test.de] = sgm["ref"]
    for path, extra in (extra_members or {}).items():
        members[path].update(extra)
    files = {path: _tgz(m) for path, m in members.items()}

    def archive(a: Archive) -> Archive:
        data = files[a.path]
        if a.sha256:
            return Archive(a.path, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        if a.md5:
            return Archive(a.path, size=len(data), md5=hashlib.md5(data).hexdigest())
        return Archive(a.path)  # dev: recorded on first download

    reg = Registry(
        corpora={
            name: dataclasses.replace(c, archive=archive(c.archive), lines=len(train[name][0]))
            for name, c in WMT14.corpora.items()
        },
        dev=dataclasses.replace(WMT14.dev, archive=archive(WMT14.dev.archive), segments=n_dev),
        test=dataclasses.replace(WMT14.test, archive=archive(WMT14.test.archive), segments=n_test),
    )
    return Mirror(files, reg, train, dev, test)


# ----------------------------------------------------------------------------- HTTP server


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        st: Server = self.server.state  # type: ignore[attr-defined]
        path = self.path.lstrip("/")
        with st.lock:
            st.requests.append((path, dict(self.headers.items())))
            fault = st.faults[path].popleft() if st.faults[path] else None
        if fault and fault[0] == "delay":
            time.sleep(fault[1])
        if fault and fault[0] == "status":
            self.send_response(fault[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = st.files.get(path)
        if data is None:
            self.send_error(404)
            return
        start, rng = 0, self.headers.get("Range")
        if rng and not (fault and fault[0] == "ignore_range"):
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault and fault[0] == "drop":  # promise everything, send part, hang up
            self.wfile.write(body[: fault[1]])
            self.wfile.flush()
            self.close_connection = True
            return
        if fault and fault[0] == "trickle":  # one byte every fault[1] seconds, never silent
            self.close_connection = True
            try:
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(fault[1])
            except OSError:  # the client gave up
                pass
            return
        self.wfile.write(body)


@dataclasses.dataclass
class Server:
    url: str
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)
    requests: list[tuple[str, dict]] = dataclasses.field(default_factory=list)
    faults: dict[str, deque] = dataclasses.field(default_factory=lambda: defaultdict(deque))
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def fail(self, path: str, *faults: tuple) -> None:
        """Queue faults for the next requests of ``path``: ("status", code), ("drop", n
        bytes), ("ignore_range",), ("delay", seconds), ("trickle", seconds per byte)."""
        self.faults[path].extend(faults)

    def hits(self, path: str) -> list[dict]:
        return [h for p, h in self.requests if p == path]


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients that gave up
            super().handle_error(request, client_address)


@pytest.fixture
def server():
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    st = Server(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.state = st  # type: ignore[attr-defined]
    t = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    t.start()
    yield st
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(dl, "BACKOFF_BASE", 0.001)


@pytest.fixture(scope="module")
def mirror() -> Mirror:
    return build_mirror()


def _cfg(tmp_path: Path, mirror_url: str, **kw) -> DataConfig:
    base = dict(source="wmt14", mirror=mirror_url, cache_dir=str(tmp_path / "cache"), retries=3)
    return DataConfig(**{**base, **kw})


def _assert_raw(out: Path, m: Mirror, corpora=tuple(paths.CORPORA)) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == "wmt14"
    assert list(manifest["corpora"]) == [c for c in paths.CORPORA if c in corpora]
    for name in corpora:
        en, de = m.train[name]
        assert paths.raw_train(name, "en", out).read_bytes() == _text(en)
        assert paths.raw_train(name, "de", out).read_bytes() == _text(de)
        assert manifest["corpora"][name] == {
            "lines": len(en),
            "en": f"train/{name}.en",
            "de": f"train/{name}.de",
        }
    assert paths.raw_dev("en", out).read_bytes() == _text(m.dev[0])
    assert paths.raw_dev("de", out).read_bytes() == _text(m.dev[1])
    assert paths.raw_test("en", out).read_text().splitlines() == m.test[0]  # entities undone
    assert paths.raw_test("de", out).read_text().splitlines() == m.test[1]
    assert manifest["dev"]["lines"] == len(m.dev[0]) and manifest["test"]["lines"] == len(m.test[0])
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(
        ["manifest.json"]
        + [f"train/{c}.{lg}" for c in corpora for lg in paths.LANGS]
        + [
            f"{s}/{n}.{lg}"
            for s, n in (("dev", "newstest2013"), ("test", "newstest2014"))
            for lg in paths.LANGS
        ]
    )


# ----------------------------------------------------------------------------- tests


def test_registry_facts():
    """The registry holds the issue's URLs, members, sizes and digests."""
    ep = WMT14.corpora["europarl-v7"]
    assert ep.archive.url == "http://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz"
    assert (ep.en, ep.de, ep.lines, ep.archive.size) == (
        "training/europarl-v7.de-en.en",
        "training/europarl-v7.de-en.de",
        1_920_209,
        657_632_379,
    )
    cc = WMT14.corpora["commoncrawl"]
    assert cc.archive.sha256.startswith("c7a74e2e") and cc.lines == 2_399_123
    assert WMT14.corpora["news-commentary-v9"].lines == 201_288
    assert WMT14.test.archive.md5 == "a8cd784e006feb32ac6f3d9ec7eb389a"
    assert (WMT14.test.segments, WMT14.dev.segments) == (3003, 3000)
    assert WMT14.dev.archive.sha256 is None and WMT14.dev.archive.md5 is None
    assert list(WMT14.corpora) == list(paths.CORPORA)
    assert mirror_url(ep.archive, "https://m.example/wmt/") == (
        "https://m.example/wmt/wmt13/training-parallel-europarl-v7.tgz"
    )
    # a corpus subset needs only its own archive plus dev and test
    assert [a.path for a in WMT14.archives(["news-commentary-v9"])] == [
        "wmt14/training-parallel-nc-v9.tgz",
        "wmt14/dev.tgz",
        "wmt14/test-full.tgz",
    ]


def test_full_download_then_cache_hit(tmp_path, server, mirror):
    server.files.update(mirror.files)
    out = tmp_path / "data" / "raw"
    download(_cfg(tmp_path, server.url), out, registry=mirror.registry)
    _assert_raw(out, mirror)
    assert len(server.requests) == 5  # one per archive
    assert all(h.get("Range") is None for _, h in server.requests)
    cache = tmp_path / "cache"
    for rel, data in mirror.files.items():
        assert (cache / rel).read_bytes() == data
    assert not list(cache.rglob("*.part"))
    record = (cache / "wmt14/dev.tgz.sha256").read_text().split()[0]
    assert record == hashlib.sha256(mirror.files["wmt14/dev.tgz"]).hexdigest()
    assert [p.name for p in out.parent.iterdir()] == ["raw"]  # no staging left behind

    # A rerun is served from the cache: no HTTP request at all.
    (out / "manifest.json").unlink()
    download(_cfg(tmp_path, server.url), out, registry=mirror.registry)
    assert len(server.requests) == 5
    _assert_raw(out, mirror)


def test_corpora_subset_fetches_only_what_it_needs(tmp_path, server, mirror):
    server.files.update(mirror.files)
    out = tmp_path / "raw"
    download(
        _cfg(tmp_path, server.url, corpora=["news-commentary-v9"]), out, registry=mirror.registry
    )
    _assert_raw(out, mirror, corpora=("news-commentary-v9",))
    assert sorted(p for p, _ in server.requests) == [
        "wmt14/dev.tgz",
        "wmt14/test-full.tgz",
        "wmt14/training-parallel-nc-v9.tgz",
    ]


def test_dropped_connection_resumes_with_range(tmp_path, server, mirror):
    server.files.update(mirror.files)
    path = "wmt13/training-parallel-europarl-v7.tgz"
    size = len(mirror.files[path])
    assert size > 20_000
    server.fail(path, ("drop", 12_345), ("drop", 3_000))
    out = tmp_path / "raw"
    download(_cfg(tmp_path, server.url), out, registry=mirror.registry)
    hits = server.hits(path)
    assert [h.get("Range") for h in hits] == [None, "bytes=12345-", "bytes=15345-"]
    assert (tmp_path / "cache" / path).read_bytes() == mirror.files[path]
    _assert_raw(out, mirror)


def test_server_ignoring_range_restarts_from_zero(tmp_path, server, mirror):
    server.files.update(mirror.files)
    path = "wmt13/training-parallel-commoncrawl.tgz"
    server.fail(path, ("drop", 100), ("ignore_range",))
    download(_cfg(tmp_path, server.url), tmp_path / "raw", registry=mirror.registry)
    assert [h.get("Range") for h in server.hits(path)] == [None, "bytes=100-"]
    assert (tmp_path / "cache" / path).read_bytes() == mirror.files[path]


def test_complete_part_file_is_not_downloaded_again(tmp_path, server, mirror):
    """A .part that already holds every byte (killed before the rename): 416, then done."""
    server.files.update(mirror.files)
    path = "wmt14/training-parallel-nc-v9.tgz"
    part = tmp_path / "cache" / (path + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(mirror.files[path])
    download(_cfg(tmp_path, server.url), tmp_path / "raw", registry=mirror.registry)
    assert [h.get("Range") for h in server.hits(path)] == [f"bytes={len(mirror.files[path])}-"]
    assert (tmp_path / "cache" / path).read_bytes() == mirror.files[path]


def test_transient_errors_are_retried_then_give_up(tmp_path, server, mirror):
    server.files.update(mirror.files)
    path = "wmt14/dev.tgz"
    server.fail(path, ("status", 503), ("status", 500))
    download(_cfg(tmp_path, server.url), tmp_path / "raw", registry=mirror.registry)
    assert len(server.hits(path)) == 3

    server.requests.clear()
    server.fail(path, *[("status", 502)] * 10)
    cfg = _cfg(tmp_path, server.url, cache_dir=str(tmp_path / "cache2"), retries=2)
    with pytest.raises(DataError, match=r"wmt14/dev\.tgz: giving up after 3 attempts: HTTP 502"):
        download(cfg, tmp_path / "raw2", registry=mirror.registry)
    assert len(server.hits(path)) == 3
    assert not (tmp_path / "raw2").exists()


def test_404_is_not_retried(tmp_path, server, mirror):
    server.files.update(mirror.files)
    del server.files["wmt13/training-parallel-commoncrawl.tgz"]
    with pytest.raises(DataError, match=r"training-parallel-commoncrawl\.tgz: HTTP 404"):
        download(_cfg(tmp_path, server.url, retries=5), tmp_path / "raw", registry=mirror.registry)
    assert len(server.hits("wmt13/training-parallel-commoncrawl.tgz")) == 1
    assert not (tmp_path / "raw").exists()


def test_timeout_is_retried(tmp_path, server, mirror):
    server.files.update(mirror.files)
    path = "wmt14/dev.tgz"
    server.fail(path, ("delay", 1.0))  # longer than the socket timeout
    download(_cfg(tmp_path, server.url, timeout=0.2), tmp_path / "raw", registry=mirror.registry)
    assert len(server.hits(path)) == 2
    _assert_raw(tmp_path / "raw", mirror)


def test_connection_refused_is_retried(tmp_path, mirror):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _cfg(tmp_path, f"http://127.0.0.1:{port}", retries=1)
    with pytest.raises(DataError, match="giving up after 2 attempts"):
        download(cfg, tmp_path / "raw", registry=mirror.registry)


def test_wrong_checksum_leaves_nothing_behind(tmp_path, server, mirror):
    server.files.update(mirror.files)
    nc = mirror.registry.corpora["news-commentary-v9"]
    bad = dataclasses.replace(nc, archive=dataclasses.replace(nc.archive, sha256="0" * 64))
    reg = dataclasses.replace(mirror.registry, corpora={**mirror.registry.corpora, nc.name: bad})
    out = tmp_path / "raw"
    out.mkdir()
    (out / "old").write_text("previous run")
    with pytest.raises(
        DataError,
        match=r"training-parallel-nc-v9\.tgz: sha256 mismatch: got [0-9a-f]{64}, expected 0{64}",
    ):
        download(_cfg(tmp_path, server.url), out, registry=reg)
    cached = tmp_path / "cache" / nc.archive.path
    assert not cached.exists() and not cached.with_name(cached.name + ".part").exists()
    assert [p.name for p in out.iterdir()] == ["old"]  # data/raw untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "raw"]  # no staging left

    # ...and with verification off (a mirror of one's own) the same archive is accepted.
    download(_cfg(tmp_path, server.url, verify_checksums=False), out, registry=reg)
    _assert_raw(out, mirror)


def test_md5_mismatch(tmp_path, server, mirror):
    server.files.update(mirror.files)
    reg = dataclasses.replace(
        mirror.registry,
        test=dataclasses.replace(
            mirror.registry.test,
            archive=dataclasses.replace(mirror.registry.test.archive, md5="f" * 32),
        ),
    )
    with pytest.raises(DataError, match=r"test-full\.tgz: md5 mismatch"):
        download(_cfg(tmp_path, server.url), tmp_path / "raw", registry=reg)


def test_recorded_sha256_protects_later_downloads(tmp_path, server, mirror):
    server.files.update(mirror.files)
    cfg = _cfg(tmp_path, server.url)
    download(cfg, tmp_path / "raw", registry=mirror.registry)
    # The server now serves a different dev.tgz; the cached copy is gone.
    (tmp_path / "cache" / "wmt14/dev.tgz").unlink()
    server.files["wmt14/dev.tgz"] = _tgz(
        {"dev/newstest2013.en": b"a\n", "dev/newstest2013.de": b"b\n"}
    )
    with pytest.raises(DataError, match=r"differs from the one recorded on first download"):
        download(cfg, tmp_path / "raw", registry=mirror.registry)
    _assert_raw(tmp_path / "raw", mirror)  # the previous good output stays


def test_corrupt_cached_archive_is_downloaded_again(tmp_path, server, mirror):
    server.files.update(mirror.files)
    path = "wmt14/training-parallel-nc-v9.tgz"
    cached = tmp_path / "cache" / path
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"garbage")
    download(_cfg(tmp_path, server.url), tmp_path / "raw", registry=mirror.registry)
    assert cached.read_bytes() == mirror.files[path]
    assert len(server.hits(path)) == 1


def test_concurrent_runs_share_the_cache(tmp_path, server, mirror):
    """Two downloads of one archive into one cache take turns: one HTTP request."""
    server.files.update(mirror.files)
    archive = mirror.registry.corpora["commoncrawl"].archive
    server.fail(archive.path, ("delay", 0.3))
    results, errors = [], []

    def fetch() -> None:
        try:
            results.append(dl.fetch_archive(archive, tmp_path / "cache", mirror=server.url))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(server.hits(archive.path)) == 1
    assert results[0] == results[1] and results[0].read_bytes() == mirror.files[archive.path]


def test_no_lock_file_is_left_in_the_cache(tmp_path, server, mirror):
    server.files.update(mirror.files)
    cache = tmp_path / "cache"
    download(_cfg(tmp_path, server.url), tmp_path / "raw", registry=mirror.registry)
    assert list(cache.rglob("*.tgz"))
    assert not list(cache.rglob("*.lock"))


def test_lock_taken_over_from_a_holder_that_removed_it(tmp_path):
    """A waiter that wakes up on a lock file its holder has deleted locks the new one."""
    lock = tmp_path / "a.tgz.lock"
    inside, order = threading.Event(), []

    def first() -> None:
        with dl._locked(lock):
            inside.set()
            time.sleep(0.3)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    inside.wait()
    with dl._locked(lock):  # waits for first, then re-checks the file at the path
        order.append("second in")
        assert lock.exists()
    t.join()
    assert order == ["first done", "second in"]
    assert not lock.exists()


def test_trickling_server_is_retried_then_given_up(tmp_path, server, mirror):
    """A server that sends a byte at a time never trips the socket timeout: data.min_speed
    ends such a transfer; the retry resumes where it stopped."""
    server.files.update(mirror.files)
    path = "wmt14/dev.tgz"
    server.fail(path, ("trickle", 0.02))
    cfg = _cfg(tmp_path, server.url, timeout=0.3, min_speed=1000)
    download(cfg, tmp_path / "raw", registry=mirror.registry)
    hits = server.hits(path)
    assert len(hits) == 2 and hits[1]["Range"].startswith("bytes=")
    assert int(hits[1]["Range"].removeprefix("bytes=").rstrip("-")) > 0
    _assert_raw(tmp_path / "raw", mirror)

    server.fail(path, ("trickle", 0.02), ("trickle", 0.02))
    cfg = _cfg(
        tmp_path, server.url, timeout=0.3, min_speed=1000, retries=1, cache_dir=str(tmp_path / "c")
    )
    start = time.monotonic()
    with pytest.raises(
        DataError,
        match=r"dev\.tgz: giving up after 2 attempts: too slow: \d+ bytes in 0\.\d s, below "
        r"data\.min_speed=1000 bytes/s; check the connection or try another data\.mirror",
    ):
        download(cfg, tmp_path / "raw2", registry=mirror.registry)
    assert time.monotonic() - start < 5
    assert not (tmp_path / "raw2").exists()


def test_corrupt_cached_archive_without_verification_names_the_file_to_delete(
    tmp_path, server, mirror
):
    server.files.update(mirror.files)
    cfg = _cfg(tmp_path, server.url, verify_checksums=False)
    cached = tmp_path / "cache" / "wmt14/training-parallel-nc-v9.tgz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 50)  # a gzip header, then nothing
    with pytest.raises(
        DataError,
        match=rf"corrupt or unreadable archive: .*; delete {re.escape(str(cached))} to download",
    ):
        download(cfg, tmp_path / "raw", registry=mirror.registry)
    cached.unlink()  # the way out the message gives
    download(cfg, tmp_path / "raw", registry=mirror.registry)
    _assert_raw(tmp_path / "raw", mirror)


def test_full_disk_while_downloading_is_one_line_and_not_retried(
    tmp_path, server, mirror, monkeypatch, capsys
):
    server.files.update(mirror.files)

    class FullDisk(io.FileIO):
        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

    real_open = open

    def fake_open(file, mode="r", *args, **kwargs):
        if str(file).endswith(".part") and "b" in mode:
            return FullDisk(file, mode.replace("b", ""))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(dl, "open", fake_open, raising=False)
    assert _stage_error(tmp_path, _cfg(tmp_path, server.url, retries=3), capsys) == (
        "error: cannot write an output: No space left on device; outputs written atomically "
        "were left as they were: free some space (or raise the file size limit) and rerun"
    )
    assert sum(len(server.hits(a.path)) for a in mirror.registry.archives(list(paths.CORPORA))) == 1
    assert not (tmp_path / "raw").exists()


def test_file_mirror(tmp_path, mirror):
    root = mirror.write(tmp_path / "mirror")
    out = tmp_path / "raw"
    download(_cfg(tmp_path, root.as_uri()), out, registry=mirror.registry)
    _assert_raw(out, mirror)
    with pytest.raises(DataError, match="no such file"):
        download(
            _cfg(tmp_path, (tmp_path / "nowhere").as_uri(), cache_dir=str(tmp_path / "c2")),
            out,
            registry=mirror.registry,
        )


def test_mismatched_line_counts_name_files_and_counts(tmp_path, server):
    m = build_mirror(europarl_de_lines=2999)
    server.files.update(m.files)
    reg = m.registry
    with pytest.raises(
        DataError,
        match=r"europarl-v7: training/europarl-v7\.de-en\.en has 3,000 lines but "
        r"training/europarl-v7\.de-en\.de has 2,999",
    ):
        download(_cfg(tmp_path, server.url), tmp_path / "raw", registry=reg)
    assert not (tmp_path / "raw").exists()


def test_unexpected_line_count_is_an_error(tmp_path, server, mirror):
    server.files.update(mirror.files)
    ep = mirror.registry.corpora["europarl-v7"]
    reg = dataclasses.replace(
        mirror.registry,
        corpora={**mirror.registry.corpora, ep.name: dataclasses.replace(ep, lines=1_920_209)},
    )
    with pytest.raises(DataError, match=r"have 3,000 lines, expected 1,920,209"):
        download(_cfg(tmp_path, server.url), tmp_path / "raw", registry=reg)


def test_malformed_sgml_names_member_and_line(tmp_path, server):
    bad = b'<srcset setid="t" srclang="any">\n<seg id="1">loose</seg>\n</srcset>\n'
    m = build_mirror(test_src=bad)
    server.files.update(m.files)
    with pytest.raises(
        DataError, match=r"^test-full/newstest2014-deen-src\.en\.sgm:2: <seg> outside a <doc>"
    ):
        download(_cfg(tmp_path, server.url), tmp_path / "raw", registry=m.registry)


def test_missing_member_is_an_error(tmp_path, server, mirror):
    server.files.update(mirror.files)
    nc = mirror.registry.corpora["news-commentary-v9"]
    reg = dataclasses.replace(
        mirror.registry,
        corpora={**mirror.registry.corpora, nc.name: dataclasses.replace(nc, de="training/nc.de")},
    )
    with pytest.raises(
        DataError, match=r"training-parallel-nc-v9\.tgz: archive has no member training/nc\.de"
    ):
        download(_cfg(tmp_path, server.url), tmp_path / "raw", registry=reg)


# ----------------------------------------------------------------------------- extraction


def _evil_tar(tmp_path: Path, evil: tarfile.TarInfo) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        good = tarfile.TarInfo("dev/newstest2013.en")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"a\n"))
        tar.addfile(evil, io.BytesIO(b"x\n") if evil.isreg() else None)
    p = tmp_path / "evil.tgz"
    p.write_bytes(buf.getvalue())
    return p


def _info(name: str, type_: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = linkname
    info.size = 2 if type_ == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "evil, why",
    [
        (_info("../../etc/cron.d/x"), "path contains '..'"),
        (_info("dev/../../x"), "path contains '..'"),
        (_info("/etc/passwd"), "absolute path"),
        (
            _info("dev/newstest2013.de", tarfile.SYMTYPE, "/etc/passwd"),
            "symbolic link to '/etc/passwd'",
        ),
        (_info("dev/link", tarfile.LNKTYPE, "dev/newstest2013.en"), "hard link"),
        (_info("dev/null", tarfile.CHRTYPE), "device file"),
        (_info("dev/pipe", tarfile.FIFOTYPE), "fifo"),
    ],
)
def test_unsafe_members_are_refused(tmp_path, evil, why):
    archive = _evil_tar(tmp_path, evil)
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="refusing unsafe member") as e:
        extract_members(archive, ["dev/newstest2013.en", "dev/newstest2013.de"], dest)
    assert repr(evil.name) in str(e.value) and why in str(e.value)
    assert not (tmp_path / "etc").exists()


def test_unsafe_member_in_a_downloaded_archive(tmp_path, server):
    m = build_mirror(extra_members={"wmt14/dev.tgz": {}})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("dev/newstest2013.en", b"a\n"), ("dev/newstest2013.de", b"b\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.addfile(_info("dev/evil", tarfile.SYMTYPE, "../../../home"))
    server.files.update(m.files)
    server.files["wmt14/dev.tgz"] = buf.getvalue()
    with pytest.raises(
        DataError, match=r"dev\.tgz: refusing unsafe member 'dev/evil': symbolic link"
    ):
        download(_cfg(tmp_path, server.url), tmp_path / "raw", registry=m.registry)
    assert not (tmp_path / "raw").exists()


def test_corrupt_archive(tmp_path):
    p = tmp_path / "bad.tgz"
    p.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 50)
    with pytest.raises(DataError, match="corrupt or unreadable archive"):
        extract_members(p, ["x"], tmp_path / "d")


# ----------------------------------------------------------------------------- staging -> raw


def _staging(
    root: Path, reg: Registry, n: int | dict[str, int] = 4, dev: int = 3, test: int = 2
) -> Path:
    """The official extracted layout, as the demo generator writes it: ``n`` numbered lines
    per corpus (a dict: per corpus name)."""
    for c in reg.corpora.values():
        count = n[c.name] if isinstance(n, dict) else n
        for lang in paths.LANGS:
            (root / c.member(lang)).parent.mkdir(parents=True, exist_ok=True)
            # the last line lacks its newline: finalize_raw adds it
            (root / c.member(lang)).write_text(
                "\n".join(f"{c.name} {lang} {i}" for i in range(count))
            )
    for lang in paths.LANGS:
        (root / reg.dev.member(lang)).parent.mkdir(parents=True, exist_ok=True)
        (root / reg.dev.member(lang)).write_text("".join(f"dev {lang} {i}\r\n" for i in range(dev)))
    (root / reg.test.en).parent.mkdir(parents=True, exist_ok=True)
    write_sgml(root / reg.test.en, [("d", [f"t en {i}" for i in range(test)])], setid="t")
    write_sgml(
        root / reg.test.de, [("d", [f"t de {i}" for i in range(test)])], setid="t", kind="ref"
    )
    return root


def test_finalize_raw_from_demo_layout(tmp_path):
    staging = _staging(tmp_path / "staging", WMT14)
    manifest = finalize_raw(
        staging,
        tmp_path / "raw",
        source="demo",
        corpora=["commoncrawl", "europarl-v7"],
        dev_segments=3,
        test_segments=2,
    )
    raw = tmp_path / "raw"
    assert list(manifest["corpora"]) == ["europarl-v7", "commoncrawl"]  # registry order
    assert paths.raw_train("commoncrawl", "de", raw).read_text() == "".join(
        f"commoncrawl de {i}\n" for i in range(4)
    )
    assert paths.raw_dev("en", raw).read_text() == "dev en 0\ndev en 1\ndev en 2\n"  # \r gone
    assert paths.raw_test("de", raw).read_text() == "t de 0\nt de 1\n"
    assert json.loads((raw / "manifest.json").read_text()) == manifest
    assert manifest["source"] == "demo" and manifest["test"] == {
        "name": "newstest2014",
        "lines": 2,
        "en": "test/newstest2014.en",
        "de": "test/newstest2014.de",
    }
    assert not paths.raw_train("news-commentary-v9", "en", raw).exists()


def test_finalize_raw_checks_segment_counts(tmp_path):
    staging = _staging(tmp_path / "staging", WMT14)
    with pytest.raises(DataError, match=r"newstest2013: .* have 3 lines, expected 500"):
        finalize_raw(
            staging,
            tmp_path / "raw",
            source="demo",
            corpora=list(paths.CORPORA),
            dev_segments=500,
            test_segments=2,
        )
    assert not (tmp_path / "raw").exists()


def test_finalize_raw_missing_member(tmp_path):
    staging = _staging(tmp_path / "staging", WMT14)
    (staging / WMT14.corpora["commoncrawl"].de).unlink()
    with pytest.raises(DataError, match=r"commoncrawl: commoncrawl\.de-en\.de is missing"):
        finalize_raw(staging, tmp_path / "raw", source="demo", corpora=["commoncrawl"])


# ----------------------------------------------------------------------------- the stage


def _stage_app():
    spec = importlib.util.spec_from_file_location("stage_download", ROOT / "stages/download.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.app


def _stage_error(tmp_path: Path, cfg: DataConfig, capsys) -> str:
    """Run the download stage (as a program) with ``cfg``; it must fail: its last stderr
    line."""
    from aiayn.cli_util import run
    from aiayn.config import dump_params, load_params

    p = load_params(ROOT / "params.yaml")
    p.data = cfg
    params = tmp_path / "params.yaml"
    params.write_text(dump_params(p))
    with pytest.raises(SystemExit) as e:
        run(_stage_app(), ["--params", str(params), "--out", str(tmp_path / "raw")])
    assert e.value.code == 1
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_stage_reports_one_line_error(tmp_path, server, capsys):
    """The Typer command turns a download failure into one line and exit code 1."""
    err = _stage_error(tmp_path, _cfg(tmp_path, server.url), capsys)  # no files: 404
    assert err.startswith("error: ") and "HTTP 404" in err
    assert not (tmp_path / "raw").exists()
