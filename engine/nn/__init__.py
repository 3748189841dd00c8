"""Neural-network building blocks with PyTorch's names: `Module`, layers, `functional`,
`init` and `utils`. Written only against Tensor operations, so every model runs on every
device."""

from . import functional, init, utils
from .layers import (
    ELU,
    GELU,
    GRU,
    LSTM,
    RNN,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    GRUCell,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    LSTMCell,
    Maxout,
    MaxPool2d,
    MultiheadAttention,
    PositionalEncoding,
    ReLU,
    RNNBase,
    RNNCell,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
    TransformerEncoder,
    TransformerEncoderLayer,
    Unflatten,
)
from .module import IncompatibleKeys, Module, ModuleList, Sequential, StateDictError
from .parameter import Parameter

__all__ = [
    "functional", "init", "utils", "Module", "Sequential", "ModuleList", "Parameter",
    "StateDictError", "IncompatibleKeys", "ELU", "GELU", "AdaptiveAvgPool2d", "AvgPool2d",
    "BatchNorm1d", "BatchNorm2d", "Conv2d", "Dropout", "Embedding", "Flatten", "Identity",
    "LeakyReLU", "Linear", "LogSoftmax", "MaxPool2d", "Maxout", "ReLU", "Sigmoid", "SiLU",
    "Softmax", "Softplus", "Tanh", "Unflatten", "RNNBase", "RNN", "LSTM", "GRU", "RNNCell",
    "LSTMCell", "GRUCell", "MultiheadAttention", "LayerNorm", "PositionalEncoding",
    "TransformerEncoder", "TransformerEncoderLayer",
]
