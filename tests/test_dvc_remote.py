"""Sharing through DVC remotes: push, clone, pull, and the pulled model translates.

Round trips against a local folder remote and against a real S3 API (moto in server mode on
127.0.0.1, DVC's dvc-s3), with credentials kept out of git. ``push: false`` outputs
(data/clean, data/shards) are not in the remote: a fresh clone pulls with
``--allow-missing`` and ``dvc repro`` rebuilds exactly those two stages, byte for byte, so
nothing downstream reruns. Also: an unreachable remote and a remote missing an object fail
with DVC's message and leave the workspace as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
from pathlib import Path

import pytest
from dvc_support import env, micro_run, out, run

pytestmark = pytest.mark.slow

NOT_PUSHED = ("data/clean", "data/shards")
PUSHED = ("data/raw", "data/tokenizer", "data/checkpoints", "data/model", "data/translations")
FAKE_KEY, FAKE_SECRET = "aiayn-test-key", "aiayn-test-secret"


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    return micro_run(tmp_path_factory, "remote")


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([\w-]+)'", output)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lock_hashes(repo: Path) -> dict[str, str]:
    """Output path -> md5 recorded in dvc.lock."""
    import yaml

    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {o["path"]: o["md5"] for st in lock["stages"].values() for o in st.get("outs", [])}


def _objects(store: Path) -> set[str]:
    """md5s (with .dir) of the objects in a folder remote."""
    return {p.parent.name + p.name for p in (store / "files" / "md5").glob("*/*")}


def _clone(origin: Path, dest: Path) -> Path:
    run(["git", "clone", "-q", str(origin), str(dest)], origin.parent)
    return dest


def _check_pulled_clone(origin: Path, clone: Path, pull: list[str], environ=None) -> None:
    """Pull into ``clone``, rebuild the push: false outputs, and use the model."""
    kw = {"env": environ} if environ else {}
    pulled = run(pull, clone, **kw)
    assert "failed" not in pulled.stderr.lower()
    for path in PUSHED:
        assert (clone / path).exists(), path
    for path in NOT_PUSHED:
        assert not (clone / path).exists(), path
    # Only the push: false outputs are missing, so only their stages rerun; they rebuild the
    # same bytes, so training, averaging, decoding and scoring are up to date.
    status = out(["dvc", "status"], clone, **kw)
    assert "data/checkpoints" not in status and "data/model" not in status
    assert _ran(out(["dvc", "repro"], clone, **kw)) == ["clean", "shard"]
    assert "up to date" in out(["dvc", "status"], clone, **kw)
    for path in ("data/model/model.pt", "data/shards/index.json", "data/clean/train.de"):
        assert _sha(clone / path) == _sha(origin / path), path
    # The pulled model translates: one line, and the whole test set exactly as it did before.
    line = (origin / "data/clean/test.en").read_text().splitlines()[0] + "\n"
    one = run(["aiayn", "translate"], clone, input=line).stdout
    assert len(one.splitlines()) == 1
    out(["aiayn", "translate", "data/clean/test.en", "-o", "test.de"], clone)
    assert (clone / "test.de").read_text() == (origin / "data/translations/test.de").read_text()


def test_folder_remote_round_trip(proj, tmp_path):
    store = tmp_path / "store"
    out(["dvc", "remote", "add", "-d", "shared", str(store)], proj)
    run(["git", "commit", "-qam", "remote"], proj)
    assert "pushed" in out(["dvc", "push"], proj)
    objects = _objects(store)
    hashes = _lock_hashes(proj)
    for path in PUSHED:
        assert hashes[path] in objects, f"{path} was not pushed"
    for path in NOT_PUSHED:
        assert hashes[path] not in objects, f"{path} is push: false but was pushed"

    clone = _clone(proj, tmp_path / "clone")
    # A plain pull reports the push: false outputs as missing (DVC's own message) ...
    plain = run(["dvc", "pull"], clone, ok=False)
    assert plain.returncode != 0 and "data/clean" in plain.stderr
    # ... and --allow-missing pulls everything that was pushed, then repro rebuilds the rest.
    fresh = _clone(proj, tmp_path / "fresh")
    _check_pulled_clone(proj, fresh, ["dvc", "pull", "--allow-missing"])
    # The pulled checkpoints carry training on in the new place (a new Colab session): more
    # steps resume from the last one instead of starting over.
    more = out(["dvc", "exp", "run", "-S", "train.max_steps=155"], fresh)
    assert "resuming from data/checkpoints/checkpoint_00000150.pt (step 150)" in more


def test_pull_with_a_missing_object_fails_and_checks_out_nothing(proj, tmp_path):
    store = tmp_path / "store"
    out(["dvc", "remote", "add", "-f", "broken", str(store)], proj)
    out(["dvc", "push", "-r", "broken"], proj)
    run(["git", "commit", "-qam", "broken remote"], proj)
    tree = _lock_hashes(proj)["data/checkpoints"]  # "<md5>.dir": the folder's manifest
    lost = json.loads((store / "files/md5" / tree[:2] / tree[2:]).read_text())[0]["md5"]
    (store / "files/md5" / lost[:2] / lost[2:]).unlink()

    clone = _clone(proj, tmp_path / "clone")
    for pull in (
        ["dvc", "pull", "-r", "broken"],
        ["dvc", "pull", "-r", "broken", "--allow-missing"],
    ):
        p = run(pull, clone, ok=False)
        assert p.returncode != 0
        assert lost in p.stderr and "failed to pull data from the cloud" in p.stderr
        assert not (clone / "data/checkpoints").exists()  # nothing half checked out


def test_unreachable_remote_is_named_and_changes_nothing(proj, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out(["dvc", "remote", "add", "-f", "offline", "s3://aiayn/store"], proj)
    out(["dvc", "remote", "modify", "offline", "endpointurl", f"http://127.0.0.1:{port}"], proj)
    run(["git", "commit", "-qam", "offline remote"], proj)
    # AWS_MAX_ATTEMPTS=1: botocore gives up at once (by default a pull retries for minutes).
    e = dict(env(), AWS_ACCESS_KEY_ID=FAKE_KEY, AWS_SECRET_ACCESS_KEY=FAKE_SECRET)
    e["AWS_MAX_ATTEMPTS"] = "1"
    model = _sha(proj / "data/model/model.pt")
    p = run(["dvc", "push", "-r", "offline"], proj, ok=False, env=e)
    assert p.returncode != 0
    assert f'Could not connect to the endpoint URL: "http://127.0.0.1:{port}/' in p.stderr
    assert _sha(proj / "data/model/model.pt") == model
    assert "up to date" in out(["dvc", "status"], proj)
    clone = _clone(proj, tmp_path / "clone")
    p = run(["dvc", "pull", "-r", "offline"], clone, ok=False, env=e)
    assert p.returncode != 0 and "Could not connect to the endpoint URL" in p.stderr
    assert "failed to pull data from the cloud" in p.stderr
    assert not any((clone / path).exists() for path in PUSHED)


# ----------------------------------------------------------------------------- S3 (moto)


@pytest.fixture
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 (free port) with an empty bucket ``aiayn``."""
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=FAKE_KEY,
            aws_secret_access_key=FAKE_SECRET,
        ).create_bucket(Bucket="aiayn")
        yield url
    finally:
        server.stop()


def test_s3_round_trip_with_credentials_out_of_git(proj, tmp_path, s3_endpoint):
    out(["dvc", "remote", "add", "-f", "s3", "s3://aiayn/experiments"], proj)
    out(["dvc", "remote", "modify", "s3", "endpointurl", s3_endpoint], proj)
    out(["dvc", "remote", "modify", "s3", "region", "us-east-1"], proj)
    out(["dvc", "remote", "modify", "--local", "s3", "access_key_id", FAKE_KEY], proj)
    out(["dvc", "remote", "modify", "--local", "s3", "secret_access_key", FAKE_SECRET], proj)
    run(["git", "add", ".dvc/config"], proj)
    run(["git", "commit", "-qm", "s3 remote"], proj)
    # The secret lives in .dvc/config.local, which git ignores; the committed config has none.
    assert FAKE_SECRET in (proj / ".dvc/config.local").read_text()
    assert FAKE_SECRET not in out(["git", "show", "HEAD:.dvc/config"], proj)
    assert run(["git", "check-ignore", "-q", ".dvc/config.local"], proj, ok=False).returncode == 0
    assert "pushed" in out(["dvc", "push", "-r", "s3"], proj)

    # A collaborator's clone: no credentials until they supply their own (here: environment).
    clone = _clone(proj, tmp_path / "clone")
    assert not (clone / ".dvc/config.local").exists()
    e = dict(env(), AWS_ACCESS_KEY_ID=FAKE_KEY, AWS_SECRET_ACCESS_KEY=FAKE_SECRET)
    _check_pulled_clone(proj, clone, ["dvc", "pull", "-r", "s3", "--allow-missing"], e)
