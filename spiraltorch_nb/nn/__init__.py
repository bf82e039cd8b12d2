"""Neural-network building blocks: modules, layers, losses, initialization, and ``functional`` (F).

>>> import spiraltorch_nb as st
>>> net = st.nn.Sequential(st.nn.Linear(4, 8), st.nn.ReLU(), st.nn.Linear(8, 1))
>>> net.num_parameters()
49
"""

from __future__ import annotations

from . import discovery, functional, init
from ._state import IncompatibleKeys, StateDictError, StateDictReport
from .activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Softplus, Tanh
from .attention import MultiheadAttention
from .container import ModuleDict, ModuleList, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .embedding import Embedding
from .linear import Flatten, Identity, Linear, Unflatten
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import HookHandle, Module, ModuleError
from .norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from .parameter import Parameter, is_parameter
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "discovery", "functional", "init",
    "Module", "ModuleError", "HookHandle", "Parameter", "is_parameter",
    "StateDictError", "StateDictReport", "IncompatibleKeys",
    "Sequential", "ModuleList", "ModuleDict",
    "Identity", "Linear", "Flatten", "Unflatten", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
    "Dropout", "Embedding", "LayerNorm", "GroupNorm", "BatchNorm1d", "BatchNorm2d",
    "ReLU", "LeakyReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "Softplus", "Softmax", "LogSoftmax",
    "MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder",
    "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
]
