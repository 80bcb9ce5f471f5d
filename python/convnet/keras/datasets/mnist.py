"""MNIST, as `keras.datasets.mnist`: from the copy bundled with convnet."""

import os

from ... import _core

__all__ = ["load_data"]


def load_data(path=None):
    """`(x_train, y_train), (x_test, y_test)`: uint8 images `[N, 28, 28]` and
    labels `[N]`. `path`: a folder of the four IDX files (default: the
    `CONVNET_MNIST` environment variable, else the bundled copy)."""
    path = path or os.environ.get("CONVNET_MNIST")
    return _core.load_mnist(os.fspath(path) if path else None)
