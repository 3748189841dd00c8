"""Layers, one file per family."""

from .activation import (
    ELU,
    GELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .attention import MultiheadAttention
from .conv import Conv2d
from .dropout import Dropout
from .embedding import Embedding
from .flatten import Flatten, Unflatten
from .layer_norm import LayerNorm
from .linear import Identity, Linear, Maxout
from .normalization import BatchNorm1d, BatchNorm2d
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell
from .transformer import PositionalEncoding, TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "ELU", "GELU", "LeakyReLU", "LogSoftmax", "ReLU", "Sigmoid", "SiLU", "Softmax", "Softplus",
    "Tanh", "Conv2d", "Dropout", "Embedding", "Flatten", "Unflatten", "Identity", "Linear",
    "Maxout", "BatchNorm1d", "BatchNorm2d", "AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d",
    "MultiheadAttention", "LayerNorm", "RNNBase", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell",
    "GRUCell", "PositionalEncoding", "TransformerEncoder", "TransformerEncoderLayer",
]
