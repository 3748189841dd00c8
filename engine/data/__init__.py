"""Dataset loaders. `DEMYSTIFY_DATA` names the folder that holds the datasets.

Each dataset lives in one folder: `root=`, else `$DEMYSTIFY_DATA/<name>`, else the
per-user cache (`engine.data.locate`); missing official files are downloaded there with
checksum verification. Pillow is needed only for image files (imported on first use).
"""

from . import transforms
from .cifar10 import CIFAR10_CLASSES, load_cifar10
from .image_folder import ImageFolder
from .images import ImageError, load_image
from .locate import ChecksumError, DataUnavailableError, cache_root
from .mnist import data_root, load_mnist
from .movielens import MovieLens100K, load_movielens100k

__all__ = ["load_mnist", "data_root", "load_cifar10", "CIFAR10_CLASSES", "ImageFolder",
           "load_image", "ImageError", "load_movielens100k", "MovieLens100K", "transforms",
           "cache_root", "ChecksumError", "DataUnavailableError"]
