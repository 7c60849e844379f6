"""The layers of ``compgrad.nn`` (one module per family, as in PyTorch)."""

from compgrad.nn.modules.activation import (
    CELU,
    ELU,
    GELU,
    SELU,
    Hardshrink,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    Mish,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Softshrink,
    Softsign,
    Tanh,
    Tanhshrink,
    Threshold,
)
from compgrad.nn.modules.activation_attention import MultiheadAttention
from compgrad.nn.modules.container import (
    ModuleDict,
    ModuleList,
    ParameterDict,
    ParameterList,
    Sequential,
)
from compgrad.nn.modules.conv import Conv1d, Conv2d, ConvTranspose2d
from compgrad.nn.modules.dropout import Dropout, Dropout1d, Dropout2d
from compgrad.nn.modules.flatten import Flatten, Unflatten
from compgrad.nn.modules.linear import Bilinear, Identity, Linear
from compgrad.nn.modules.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from compgrad.nn.modules.module import Module
from compgrad.nn.modules.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from compgrad.nn.modules.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
)
from compgrad.nn.modules.sparse import Embedding
from compgrad.nn.modules.transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "Module", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict",
    # linear, conv, pooling
    "Identity", "Linear", "Bilinear", "Conv1d", "Conv2d", "ConvTranspose2d",
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
    # normalization, dropout, embedding, reshaping
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "Dropout", "Dropout1d", "Dropout2d",
    "Embedding", "Flatten", "Unflatten",
    # activations
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid",
    "Tanh", "Softmax", "LogSoftmax", "Softplus", "Hardtanh", "Hardsigmoid", "Hardswish",
    "Softsign", "Tanhshrink", "Threshold", "LogSigmoid", "Hardshrink", "Softshrink",
    # losses
    "L1Loss", "MSELoss", "SmoothL1Loss", "HuberLoss", "NLLLoss", "CrossEntropyLoss", "BCELoss",
    "BCEWithLogitsLoss", "KLDivLoss",
    # attention
    "MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder",
]
