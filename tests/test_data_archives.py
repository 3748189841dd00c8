"""Archives are read in place and refused when a member could escape (tar slip, links);
pickles can only build arrays and containers."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from engine.data.archives import (
    UnsafeArchiveError,
    iter_members,
    member_names,
    read_member,
    safe_extract,
)
from engine.data.safe_pickle import restricted_loads
from tests.data_helpers import make_tar, make_zip


def _tar_with(path, info: tarfile.TarInfo, data: bytes = b""):
    with tarfile.open(path, "w:gz") as tf:
        ok = tarfile.TarInfo("data/ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        info.size = len(data) if info.isfile() else 0
        tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _sym(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


MALICIOUS = {
    "absolute": (tarfile.TarInfo("/tmp/evil.txt"), "outside"),
    "dotdot": (tarfile.TarInfo("data/../../evil.txt"), "outside"),
    "symlink": (_sym("data/link", "/etc/passwd"), "link"),
    "hardlink": (_sym("data/hard", "../../etc/passwd", tarfile.LNKTYPE), "link"),
    "device": (_sym("data/dev", "", tarfile.CHRTYPE), "special file"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_tar_is_refused(case, tmp_path):
    info, message = MALICIOUS[case]
    archive = _tar_with(tmp_path / "evil.tar.gz", info, b"pwned")
    with pytest.raises(UnsafeArchiveError, match=message):
        list(iter_members(archive))
    with pytest.raises(UnsafeArchiveError):
        member_names(archive)
    dest = tmp_path / "cache" / "out"
    dest.mkdir(parents=True)
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []  # validated before anything was written
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "cache/evil.txt").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt",
                                  "C:/evil.txt", "..\\evil.txt"])
def test_malicious_zip_is_refused(name, tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", b"ok")
        zf.writestr(zipfile.ZipInfo(name), b"pwned")  # ZipInfo keeps the raw name
    with pytest.raises(UnsafeArchiveError, match="outside"):
        list(iter_members(archive))
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out").exists()


def test_zip_symlink_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("link")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        list(iter_members(archive))


@pytest.mark.parametrize("maker,suffix", [(make_tar, ".tar.gz"), (make_zip, ".zip")])
def test_reading_and_extracting_good_archives(maker, suffix, tmp_path):
    files = {"top/a.txt": b"alpha", "top/sub/b.bin": bytes(range(256)), "./top/c.txt": b"c"}
    archive = maker(tmp_path / ("good" + suffix), files)
    got = dict(iter_members(archive))
    assert got == {"top/a.txt": b"alpha", "top/sub/b.bin": bytes(range(256)), "top/c.txt": b"c"}
    assert dict(iter_members(archive, lambda n: n.endswith(".bin"))) == {
        "top/sub/b.bin": bytes(range(256))}
    assert read_member(archive, "top/a.txt") == b"alpha"
    with pytest.raises(FileNotFoundError, match="nope"):
        read_member(archive, "nope")
    written = safe_extract(archive, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == sorted(got)
    assert (tmp_path / "out/top/sub/b.bin").read_bytes() == bytes(range(256))


def test_oversized_member_is_refused(tmp_path):
    archive = make_tar(tmp_path / "big.tar", {"big.bin": b"x" * 1000}, mode="w")
    with pytest.raises(UnsafeArchiveError, match="over the 100-byte limit"):
        list(iter_members(archive, max_bytes=100))


# --- restricted unpickler ------------------------------------------------------------------

class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_rejects_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"data": _Evil(marker)}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r"(posix|os|nt)\.system"):
        restricted_loads(evil)
    assert not marker.exists()
    for payload in (pickle.dumps(print), pickle.dumps(eval), pickle.dumps(OrderedDict(a=1))):
        with pytest.raises(pickle.UnpicklingError):
            restricted_loads(payload)


def test_restricted_unpickler_reads_arrays_and_rejects_object_arrays():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for protocol in (3, 4):  # (Python 2 style pickles: see test_data_cifar10)
        out = restricted_loads(pickle.dumps({"data": a, "labels": [1, 2, 3]}, protocol))
        np.testing.assert_array_equal(out["data"], a)
        assert out["labels"] == [1, 2, 3]
    with pytest.raises(pickle.UnpicklingError, match="object array"):
        restricted_loads(pickle.dumps(np.array([1, "x"], dtype=object), protocol=4))
