"""Dataset location, and downloads with checksum verification (against a local server)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.data import locate
from engine.data.locate import ChecksumError, DataUnavailableError, RemoteFile, fetch
from tests.data_helpers import closed_port_url


def test_dataset_dir_order(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMYSTIFY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DEMYSTIFY_DATA", raising=False)
    assert locate.dataset_dir("cifar10") == tmp_path / "cache" / "cifar10"
    monkeypatch.setenv("DEMYSTIFY_DATA", str(tmp_path / "data"))
    assert locate.dataset_dir("cifar10") == tmp_path / "data" / "cifar10"
    assert locate.dataset_dir("cifar10", tmp_path / "mine") == tmp_path / "mine"


def test_cache_root_conventions(tmp_path, monkeypatch):
    monkeypatch.delenv("DEMYSTIFY_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert locate.cache_root() == tmp_path / "xdg" / "demystify"
    monkeypatch.setenv("DEMYSTIFY_CACHE", str(tmp_path / "own"))
    assert locate.cache_root() == tmp_path / "own"


def test_remote_file_requires_a_checksum():
    with pytest.raises(ValueError, match="md5 or sha256"):
        RemoteFile("x.bin", ("http://127.0.0.1/x.bin",))


def test_download_verifies_and_renames(local_server, tmp_path):
    served, url = local_server
    payload = b"official dataset bytes" * 1000
    (served / "data.bin").write_bytes(payload)
    remote = RemoteFile("data.bin", (url + "data.bin",), md5=hashlib.md5(payload).hexdigest(),
                        sha256=hashlib.sha256(payload).hexdigest())
    dest = tmp_path / "dest"
    path = fetch(remote, dest, progress=False)
    assert path == dest / "data.bin" and path.read_bytes() == payload
    assert sorted(p.name for p in dest.iterdir()) == ["data.bin"]  # no .part left
    (served / "data.bin").unlink()
    assert fetch(remote, dest, progress=False) == path  # present: no network needed


def test_checksum_mismatch_is_an_error_and_leaves_nothing(local_server, tmp_path):
    served, url = local_server
    (served / "data.bin").write_bytes(b"tampered")
    remote = RemoteFile("data.bin", (url + "data.bin",), sha256="0" * 64)
    dest = tmp_path / "dest"
    with pytest.raises(ChecksumError, match=r"data\.bin.*sha256.*expected 0{64}"):
        fetch(remote, dest, progress=False)
    assert not (dest / "data.bin").exists() and not (dest / "data.bin.part").exists()


def test_next_mirror_after_failure(local_server, tmp_path):
    served, url = local_server
    (served / "good").mkdir()
    (served / "good" / "f.gz").write_bytes(b"ok")
    remote = RemoteFile("f.gz", (url + "missing/f.gz", closed_port_url() + "f.gz",
                                 url + "good/f.gz"), md5=hashlib.md5(b"ok").hexdigest())
    assert fetch(remote, tmp_path, progress=False).read_bytes() == b"ok"


def test_unreachable_network_says_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMYSTIFY_OFFLINE", "0")
    remote = RemoteFile("f.gz", (closed_port_url() + "f.gz",), md5="0" * 32)
    dest = tmp_path / "nested" / "dest"
    with pytest.raises(DataUnavailableError, match=rf"put f\.gz into {dest}.*refused") as err:
        fetch(remote, dest, dataset="Fake", progress=False)
    assert isinstance(err.value, FileNotFoundError) and "refused" in err.value.reason
    assert not dest.exists()  # no empty folder left behind


def test_offline_setting_forbids_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMYSTIFY_OFFLINE", "1")
    remote = RemoteFile("f.gz", ("http://127.0.0.1:9/f.gz",), md5="0" * 32)
    with pytest.raises(DataUnavailableError, match="downloads are disabled"):
        fetch(remote, tmp_path, progress=False)
    monkeypatch.setenv("DEMYSTIFY_OFFLINE", "0")
    with pytest.raises(DataUnavailableError, match="downloads are disabled"):
        fetch(remote, tmp_path, progress=False, download=False)


def test_official_table_is_complete():
    from engine.data import sources

    assert sorted(sources.MNIST) == sorted(
        f"{p}-{k}-idx{d}-ubyte.gz" for p in ("train", "t10k")
        for k, d in (("images", 3), ("labels", 1)))
    for remote in [*sources.MNIST.values(), sources.CIFAR10_BINARY, sources.CIFAR10_PYTHON,
                   sources.MOVIELENS_100K]:
        assert remote.md5 and len(remote.md5) == 32
        assert all(u.startswith(("https://", "http://")) and u.endswith(remote.name)
                   for u in remote.urls)
    assert Path(sources.CIFAR10_BINARY.urls[0]).name == "cifar-10-binary.tar.gz"
