"""`to_categorical` and `set_random_seed`, as in `keras.utils`."""

import numpy as np

__all__ = ["to_categorical", "set_random_seed"]


def to_categorical(y, num_classes=None, dtype="float32"):
    """Class indices as one-hot rows (`num_classes` defaults to `max(y) + 1`)."""
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if y.size and (y.min() < 0 or not np.all(np.equal(np.mod(y, 1), 0))):
        raise ValueError("to_categorical: expected non-negative integer class indices")
    y = y.astype(np.int64)
    n = int(num_classes) if num_classes is not None else (int(y.max()) + 1 if y.size else 0)
    if y.size and y.max() >= n:
        raise ValueError(f"to_categorical: class {int(y.max())} with num_classes={n}")
    out = np.zeros(y.shape + (n,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


def set_random_seed(seed):
    """Seeds the weights and shuffles of every model built from now on."""
    from .models import _set_seed

    _set_seed(int(seed))
