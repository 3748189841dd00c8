"""Helpers for the dataset tests: locating the real data, building small fake archives."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest


def real_data(*relative: str) -> Path:
    """`$DEMYSTIFY_DATA/<relative>` if it exists; skip (fail under CI) otherwise."""
    root = os.environ.get("DEMYSTIFY_DATA")
    path = Path(root).joinpath(*relative) if root else None
    if path is None or not path.exists():
        why = ("DEMYSTIFY_DATA is not set" if root is None
               else f"{'/'.join(relative)} is missing from {root}")
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must provide the real datasets")
        pytest.skip(f"{why} (point DEMYSTIFY_DATA at the data folder to run this test)")
    return path


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    """A tar archive with regular files `name -> contents`."""
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


class LocalServer:
    """A real HTTP server on 127.0.0.1 serving one folder (download tests; see the
    `local_server` fixture in conftest.py)."""

    def __init__(self, folder: Path) -> None:
        import functools
        import http.server
        import threading

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        handler = functools.partial(Quiet, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused, no network used)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def py2_pickle(obj: object) -> bytes:
    """Pickle like CIFAR-10's Python 2 files: protocol 2, `bytes` as Python 2 str
    opcodes, arrays via numpy.core.multiarray._reconstruct."""
    import pickle
    import struct

    class Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us swap one writer
        dispatch = pickle._Pickler.dispatch.copy()

        def save_str2(self, b: bytes) -> None:
            if len(b) < 256:
                self.write(pickle.SHORT_BINSTRING + bytes([len(b)]) + b)
            else:
                self.write(pickle.BINSTRING + struct.pack("<i", len(b)) + b)
            self.memoize(b)

        dispatch[bytes] = save_str2

    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def fake_cifar(rng, n_train: int = 3, n_test: int = 4):
    """Random CIFAR-like data: {split: (uint8 NHWC images, labels)} with 5 train batches."""
    import numpy as np

    def part(n):
        return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                rng.integers(0, 10, n).astype(np.int64))
    return {"train": [part(n_train) for _ in range(5)], "test": [part(n_test)]}


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
               "ship", "truck"]


def cifar_python_members(data, evil: bytes | None = None) -> dict[str, bytes]:
    members = {"cifar-10-batches-py/batches.meta": py2_pickle(
        {b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_vis": 3072})}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, (x, y) in zip(names, data["train"] + data["test"]):
        flat = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)  # official rows are CHW
        members[f"cifar-10-batches-py/{name}"] = evil if evil and name == "test_batch" else \
            py2_pickle({b"batch_label": name.encode(), b"labels": [int(v) for v in y],
                        b"data": flat, b"filenames": [b"f.png"] * len(x)})
    return members


def cifar_binary_members(data) -> dict[str, bytes]:
    import numpy as np

    members = {"cifar-10-batches-bin/batches.meta.txt": ("\n".join(CIFAR_NAMES) + "\n\n").encode()}
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name, (x, y) in zip(names, data["train"] + data["test"]):
        rec = np.concatenate([y.astype(np.uint8)[:, None],
                              x.transpose(0, 3, 1, 2).reshape(len(x), 3072)], axis=1)
        members[f"cifar-10-batches-bin/{name}"] = rec.tobytes()
    return members
