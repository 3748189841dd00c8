"""Dataset loaders. `DEMYSTIFY_DATA` names the folder that holds the datasets."""

from .mnist import data_root, load_mnist

__all__ = ["load_mnist", "data_root"]
