"""Official download locations and published checksums: the one table loaders fetch from.

MD5 sums are the ones the dataset authors publish (CIFAR-10 page, GroupLens) or that
the widely used MNIST mirrors have served unchanged for years (the original gzip files
from yann.lecun.com). A download whose checksum differs is rejected.
"""

from __future__ import annotations

from .locate import RemoteFile

_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def _mnist(name: str, md5: str) -> RemoteFile:
    return RemoteFile(name, tuple(m + name for m in _MNIST_MIRRORS), md5=md5)


MNIST: dict[str, RemoteFile] = {
    f.name: f for f in (
        _mnist("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        _mnist("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        _mnist("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        _mnist("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    )
}

CIFAR10_BINARY = RemoteFile(
    "cifar-10-binary.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
    md5="c32a1d4ab5d03f1284b67883e8d87530")
CIFAR10_PYTHON = RemoteFile(
    "cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    md5="c58f30108f718f92721af3b95e74349a")

MOVIELENS_100K = RemoteFile(
    "ml-100k.zip", ("https://files.grouplens.org/datasets/movielens/ml-100k.zip",),
    md5="0e33842e24a9c977be4e0107933c0723")
