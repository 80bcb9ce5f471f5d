"""Fashion-MNIST, as `keras.datasets.fashion_mnist`, from the IDX files on
this machine: no download. Debian and Ubuntu ship them
(`apt-get install dataset-fashion-mnist`: `/usr/share/datasets/fashion-mnist`)."""

import os

from ... import _core

__all__ = ["load_data"]

# Debian's package `dataset-fashion-mnist` installs the four files here.
DEBIAN = "/usr/share/datasets/fashion-mnist"


def _folder(path):
    if path is not None:
        return os.fspath(path)
    for p in (os.environ.get("CONVNET_FASHION_MNIST"), os.path.join("data", "fashion-mnist"), DEBIAN):
        if p and os.path.isdir(p):
            return p
    return None


def load_data(path=None):
    """`(x_train, y_train), (x_test, y_test)` as uint8 arrays `[N, 28, 28]`
    and `[N]`, from the four Fashion-MNIST IDX files in `path`; by default
    the first folder of `CONVNET_FASHION_MNIST`, `data/fashion-mnist` and
    `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`)
    that exists."""
    folder = _folder(path)
    if folder is None or not os.path.isdir(folder):
        raise OSError(
            f"fashion_mnist.load_data: no Fashion-MNIST folder ({folder or 'none of CONVNET_FASHION_MNIST, '}"
            f"{'' if folder else 'data/fashion-mnist, ' + DEBIAN}); install it with "
            "`apt-get install dataset-fashion-mnist`, or give path= a folder holding "
            "train-images-idx3-ubyte.gz and the three other IDX files"
        )
    return _core.load_mnist(folder)
