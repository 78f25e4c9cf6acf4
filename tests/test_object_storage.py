"""Checkpoints in object storage: a real S3-compatible server (moto) on loopback, through s3fs.

The `torch`, `async-torch`, `distributed` and `async-distributed` plugins save,
load, list and remove ``s3://`` checkpoints; an upload cut short by the server
dying (a proxy in front of moto, SIGKILLed after a few MB went up) never becomes
a checkpoint and leaves the previous one as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from plugin_registry.errors import CheckpointError
from tests._support.errors import raises

pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'plugin-registry[s3]')")
pytest.importorskip("moto", reason="moto is not installed (pip install 'moto[server]')")

import fsspec
import s3fs

import plugin_registry as pr
from tests._support.objectstore import Proxy, S3Server

IOS = ("torch", "async-torch", "distributed", "async-distributed")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    try:
        server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log")
    except FileNotFoundError as exc:
        pytest.skip(f"{exc} is not installed")
    yield server
    server.stop()


def _use(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> s3fs.S3FileSystem:
    """Point fsspec's s3 at ``endpoint`` for every plugin call (loads take no options)."""
    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    options = {
        "endpoint_url": endpoint,
        "key": "testing",
        "secret": "testing",
        # Fail fast once the server is gone, instead of retrying for a minute.
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }
    monkeypatch.setitem(fsspec.config.conf, "s3", options)
    fs = fsspec.filesystem("s3")
    assert isinstance(fs, s3fs.S3FileSystem)
    return fs


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    fs = _use(monkeypatch, s3_server.endpoint)
    name = f"ckpt-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    yield name
    s3fs.S3FileSystem.clear_instance_cache()


def _load(name: str) -> Any:
    return pr.load(name, kind="checkpoint_io")


def _finish(io: Any) -> None:
    wait = getattr(io, "wait", None)
    if callable(wait):
        wait()


@pytest.mark.parametrize("name", IOS)
def test_save_load_list_remove(name: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = fsspec.filesystem("s3")
    io = _load(name)
    url = f"s3://{bucket}/run/step-10"
    state = {"w": torch.randn(64, 64), "step": 10, "opt": {"lr": 0.1}}
    io.save_checkpoint(state, url)
    _finish(io)
    fs.invalidate_cache()
    listed = fs.ls(f"{bucket}/run", detail=False)
    assert listed == [f"{bucket}/run/step-10"]  # one checkpoint, no temporaries beside it
    loaded = io.load_checkpoint(url)
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 10
    assert loaded["opt"] == {"lr": 0.1}
    io.remove_checkpoint(url)
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/run/step-10")
    with raises(CheckpointError, "not-found"):
        io.load_checkpoint(url)
    io.teardown()


def _cut_upload(
    name: str, bucket: str, server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[str, dict[str, Any], BaseException | None]:
    """Save a small checkpoint, then a 32 MB one through a proxy that dies 4 MB in."""
    url = f"s3://{bucket}/run/latest"
    previous = {"w": torch.arange(1000.0), "step": 1}
    io = _load(name)
    io.save_checkpoint(previous, url)
    _finish(io)
    proxy = Proxy(server.port, die_after=4 * 2**20)
    try:
        _use(monkeypatch, proxy.endpoint)
        io = _load(name)
        failure: BaseException | None = None
        try:
            io.save_checkpoint({"w": torch.randn(8 * 2**20), "step": 2}, url)
            _finish(io)
        except CheckpointError as exc:
            failure = exc
        assert proxy.proc.wait(timeout=60) == -9  # the "server" died mid-upload
    finally:
        proxy.stop()
    _use(monkeypatch, server.endpoint)
    return url, previous, failure


@pytest.mark.parametrize("name", IOS)
def test_an_upload_cut_short_leaves_the_previous_checkpoint(
    name: str, bucket: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, previous, failure = _cut_upload(name, bucket, s3_server, monkeypatch, tmp_path)
    assert failure is not None, "the cut upload was reported as saved"
    assert "previous checkpoint" in str(failure) or "background save" in str(failure)
    io = _load(name)
    loaded = io.load_checkpoint(url)
    assert torch.equal(loaded["w"], previous["w"]) and loaded["step"] == 1
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    assert fs.ls(f"{bucket}/run", detail=False) == [f"{bucket}/run/latest"]
    io.teardown()


@pytest.mark.parametrize("name", ["torch", "distributed"])
def test_removing_a_bucket_is_refused(name: str, bucket: str) -> None:
    """remove_checkpoint("s3://bucket") deleted every object and the bucket."""
    fs = fsspec.filesystem("s3")
    io = _load(name)
    url = f"s3://{bucket}/run/step-1"
    io.save_checkpoint({"w": torch.zeros(2)}, url)
    _finish(io)
    fs.pipe(f"{bucket}/other-data.bin", b"someone's")
    for root in (f"s3://{bucket}", f"s3://{bucket}/"):
        with pytest.raises(CheckpointError, match=r"is a bucket.*nothing was removed"):
            io.remove_checkpoint(root)
    fs.invalidate_cache()
    assert fs.exists(bucket) and fs.cat(f"{bucket}/other-data.bin") == b"someone's"
    assert torch.equal(io.load_checkpoint(url)["w"], torch.zeros(2))
    io.teardown()


@pytest.mark.parametrize("name", IOS)
def test_a_save_to_a_bucket_is_refused_naming_the_path(name: str, bucket: str) -> None:
    """The distributed IO spread a checkpoint over the whole bucket (which no removal may
    then touch), and for 's3://' named the path as ''; the torch IO failed in botocore's
    words (ParamValidationError)."""
    fs = fsspec.filesystem("s3")
    fs.pipe(f"{bucket}/other-data.bin", b"someone's")
    io = _load(name)
    for url in (f"s3://{bucket}", f"s3://{bucket}/", "s3://"):
        with pytest.raises(CheckpointError, match=r"is a bucket.*nothing was saved") as info:
            io.save_checkpoint({"w": torch.zeros(2)}, url)
            _finish(io)
        assert repr(url) in str(info.value)
    fs.invalidate_cache()
    assert sorted(fs.ls(bucket, detail=False)) == [f"{bucket}/other-data.bin"]
    io.teardown()
