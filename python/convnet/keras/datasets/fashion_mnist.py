"""Fashion-MNIST, as `keras.datasets.fashion_mnist`, from local IDX files."""

import os

from ... import _core

__all__ = ["load_data"]


def load_data(path=None):
    """`(x_train, y_train), (x_test, y_test)` from the four Fashion-MNIST IDX
    files in `path` (default: the `CONVNET_FASHION_MNIST` environment
    variable, else `data/fashion-mnist`). convnet does not download: put the
    files there (Keras's own copies, or Zalando's)."""
    path = path or os.environ.get("CONVNET_FASHION_MNIST") or os.path.join("data", "fashion-mnist")
    if not os.path.isdir(path):
        raise OSError(
            f"fashion_mnist.load_data: no folder {path!r}; give path= or set CONVNET_FASHION_MNIST "
            "to a folder holding train-images-idx3-ubyte.gz and the three other IDX files"
        )
    return _core.load_mnist(os.fspath(path))
