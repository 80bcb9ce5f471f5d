"""Keras's losses, as objects or functions; `compile(loss=...)` takes either, or the name."""

__all__ = [
    "Loss",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "BinaryCrossentropy",
    "MeanSquaredError",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
    "mean_squared_error",
    "get",
]


class Loss:
    """A loss by Keras's name; `from_logits=True` for a model without its final activation."""

    _NAME = None

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)
        if self.from_logits and self._NAME == "mean_squared_error":
            raise ValueError("MeanSquaredError: from_logits does not apply")
        self.name = self._NAME

    def engine_name(self):
        return self._NAME + ("_from_logits" if self.from_logits else "")


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot targets."""

    _NAME = "categorical_crossentropy"


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy against class indices."""

    _NAME = "sparse_categorical_crossentropy"


class BinaryCrossentropy(Loss):
    """Cross-entropy of one sigmoid output against 0/1 labels."""

    _NAME = "binary_crossentropy"


class MeanSquaredError(Loss):
    """Mean squared error."""

    _NAME = "mean_squared_error"

    def __init__(self):
        super().__init__(False)


def categorical_crossentropy(y_true, y_pred):
    raise TypeError("categorical_crossentropy: pass it to compile(loss=...); convnet computes losses in its engine")


def sparse_categorical_crossentropy(y_true, y_pred):
    raise TypeError("sparse_categorical_crossentropy: pass it to compile(loss=...); convnet computes losses in its engine")


def binary_crossentropy(y_true, y_pred):
    raise TypeError("binary_crossentropy: pass it to compile(loss=...); convnet computes losses in its engine")


def mean_squared_error(y_true, y_pred):
    raise TypeError("mean_squared_error: pass it to compile(loss=...); convnet computes losses in its engine")


_NAMES = {
    "categorical_crossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
    "binary_crossentropy": "binary_crossentropy",
    "mean_squared_error": "mean_squared_error",
    "mse": "mean_squared_error",
}


def get(identifier):
    """The engine's name of a loss given as a name, a `Loss` object or one of these functions."""
    if isinstance(identifier, Loss):
        return identifier.engine_name()
    name = getattr(identifier, "__name__", identifier)
    if isinstance(name, str) and name in _NAMES:
        return _NAMES[name]
    raise ValueError(f"loss {identifier!r}: expected one of {', '.join(_NAMES)} or a convnet.keras.losses object")
