"""Keras's API over convnet's engine: `from convnet.keras.models import Sequential`."""

from . import applications, callbacks, datasets, layers, losses, models, optimizers, preprocessing, utils
from .layers import Input
from .models import Model, Sequential, load_model

__all__ = [
    "applications",
    "callbacks",
    "preprocessing",
    "datasets",
    "layers",
    "losses",
    "models",
    "optimizers",
    "utils",
    "Input",
    "Model",
    "Sequential",
    "load_model",
]
