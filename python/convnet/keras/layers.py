"""Keras's layers, with Keras's names, arguments and defaults.

Each layer describes itself as one node of convnet's model description
(`model.json`: Keras's class name as `type`, its settings as fields); the
engine builds and runs it. Called on a tensor (`Conv2D(32, 3)(x)`) a layer
adds a node to a functional graph, as in Keras.
"""

import collections
import re

__all__ = [
    "Layer",
    "Input",
    "InputLayer",
    "Conv2D",
    "MaxPooling2D",
    "MaxPool2D",
    "AveragePooling2D",
    "AvgPool2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Dense",
    "Dropout",
    "Flatten",
    "BatchNormalization",
    "Activation",
    "Add",
    "Concatenate",
    "ZeroPadding2D",
]

_ACTIVATIONS = {
    None: "linear",
    "linear": "linear",
    "relu": "relu",
    "relu6": "relu6",
    "sigmoid": "sigmoid",
    "softmax": "softmax",
    "tanh": "tanh",
    "swish": "swish",
    "silu": "swish",
    "elu": "elu",
    "leaky_relu": "leaky_relu",
}

_INITIALIZERS = ("glorot_uniform", "he_normal", "he_uniform", "zeros", "ones")


def _snake(name):
    """Keras's `to_snake_case`: `MaxPooling2D` -> `max_pooling2d`."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def _pair(value, what):
    """An int or a pair of ints, as Keras takes `kernel_size` and `strides`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value, value]
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected an int or a tuple of 2 ints, found {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (a, b)):
        raise ValueError(f"{what}: expected an int or a tuple of 2 ints, found {value!r}")
    return [a, b]


def _activation(value):
    """An activation by Keras's name (or a function named as one)."""
    name = getattr(value, "__name__", value)
    if name not in _ACTIVATIONS:
        raise ValueError(
            f"activation {value!r}: expected one of "
            + ", ".join(k for k in _ACTIVATIONS if k is not None)
        )
    act = {"name": _ACTIVATIONS[name]}
    if act["name"] == "leaky_relu":
        act["alpha"] = 0.2
    elif act["name"] == "elu":
        act["alpha"] = 1.0
    return act


def _padding(value):
    if value not in ("valid", "same"):
        raise ValueError(f"padding {value!r}: expected 'valid' or 'same'")
    return value


def _initializer(value, what):
    name = getattr(value, "__name__", value)
    if name not in _INITIALIZERS:
        raise ValueError(f"{what} {value!r}: expected one of {', '.join(_INITIALIZERS)}")
    return name


class KerasTensor:
    """A symbolic output of the functional API: which node made it, and its shape."""

    def __init__(self, node, shape):
        self.node = node
        self.shape = (None,) + tuple(shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}>"


class _Node:
    """A layer applied to its input tensors (the functional API's graph)."""

    def __init__(self, layer, inputs):
        self.layer = layer
        self.inputs = inputs


_uids = collections.defaultdict(int)


def _auto_name(base):
    """Keras's automatic names, unique in the process: `dense`, `dense_1`, ...
    (`convnet.keras.utils.clear_session()` starts them again)."""
    name = f"{base}_{_uids[base]}" if base in _uids else base
    _uids[base] += 1
    return name


class Layer:
    """The base of every layer: its name (Keras's automatic one unless
    given), whether it trains, and the first layer's `input_shape`."""

    def __init__(self, name=None, trainable=True, input_shape=None, **kwargs):
        for key in kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected argument {key!r}")
        self.name = name if name is not None else _auto_name(_snake(self.kind))
        self.trainable = trainable
        self.input_shape = tuple(input_shape) if input_shape is not None else None

    @property
    def kind(self):
        """Keras's class name (the `type` in model files)."""
        return type(self)._KIND

    def spec(self):
        """This layer's settings as the model file has them."""
        return {"type": self.kind}

    def __call__(self, inputs):
        many = isinstance(inputs, (list, tuple))
        tensors = list(inputs) if many else [inputs]
        for t in tensors:
            if not isinstance(t, KerasTensor):
                raise ValueError(
                    f"{self.kind}: call a layer on the output of Input() or of another layer, "
                    f"found {type(t).__name__}"
                )
        node = _Node(self, tensors)
        return KerasTensor(node, ())

    def __repr__(self):
        return f"<{self.kind} name={self.name!r}>"


class InputLayer:
    """The model's input (what `Input(shape)` makes)."""

    def __init__(self, shape, name=None):
        self.shape = tuple(shape)
        self.name = name if name is not None else _auto_name("input_layer")


def Input(shape, name=None):
    """The functional API's input: `x = Input(shape=(28, 28, 1))`."""
    shape = tuple(shape)
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"Input: shape must be positive ints, found {shape!r}")
    return KerasTensor(InputLayer(shape, name), shape)


class Conv2D(Layer):
    """2-D convolution (`filters`, `kernel_size`, `strides`, `padding`, ...)."""

    _KIND = "Conv2D"

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        dilation_rate=(1, 1),
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"Conv2D: filters must be a positive int, found {filters!r}")
        self.filters = filters
        self.kernel_size = _pair(kernel_size, "Conv2D kernel_size")
        self.strides = _pair(strides, "Conv2D strides")
        self.padding = _padding(padding)
        self.dilation_rate = _pair(dilation_rate, "Conv2D dilation_rate")
        self.groups = groups
        self.activation = _activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializer(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _initializer(bias_initializer, "bias_initializer")

    def spec(self):
        return {
            "type": "Conv2D",
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "dilation_rate": self.dilation_rate,
            "padding": self.padding,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
            "groups": self.groups,
        }


class _Pooling(Layer):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size, f"{self.kind} pool_size")
        self.strides = None if strides is None else _pair(strides, f"{self.kind} strides")
        self.padding = _padding(padding)

    def spec(self):
        return {
            "type": self.kind,
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
        }


class MaxPooling2D(_Pooling):
    """Max pooling (`pool_size` (2, 2), `strides` = `pool_size` unless given)."""

    _KIND = "MaxPooling2D"


class AveragePooling2D(_Pooling):
    """Average pooling (padded cells excluded, as Keras)."""

    _KIND = "AveragePooling2D"


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class GlobalAveragePooling2D(Layer):
    """Mean of each channel over all pixels."""

    _KIND = "GlobalAveragePooling2D"


class GlobalMaxPooling2D(Layer):
    """Maximum of each channel over all pixels."""

    _KIND = "GlobalMaxPooling2D"


class Dense(Layer):
    """Fully connected layer (`units`, `activation`, ...)."""

    _KIND = "Dense"

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"Dense: units must be a positive int, found {units!r}")
        self.units = units
        self.activation = _activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializer(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _initializer(bias_initializer, "bias_initializer")

    def spec(self):
        return {
            "type": "Dense",
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }


class Dropout(Layer):
    """Inverted dropout at `rate`."""

    _KIND = "Dropout"

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), found {rate!r}")
        self.rate = float(rate)

    def spec(self):
        return {"type": "Dropout", "rate": self.rate}


class Flatten(Layer):
    """Flattening to `[N, features]` (channels-last order, as Keras)."""

    _KIND = "Flatten"


class BatchNormalization(Layer):
    """Batch normalization over channels (Keras's momentum 0.99, epsilon 1e-3)."""

    _KIND = "BatchNormalization"

    def __init__(self, momentum=0.99, epsilon=0.001, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def spec(self):
        return {
            "type": "BatchNormalization",
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }


class Activation(Layer):
    """A standalone activation: `Activation("relu")`."""

    _KIND = "Activation"

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activation(activation)

    def spec(self):
        return {"type": "Activation", "activation": self.activation}


class Add(Layer):
    """Elementwise sum of its inputs."""

    _KIND = "Add"


class Concatenate(Layer):
    """Concatenation of its inputs on the channel axis (the last)."""

    _KIND = "Concatenate"

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1, 3):
            raise ValueError(f"Concatenate: axis {axis!r}: only the channel axis (-1) is supported")


class ZeroPadding2D(Layer):
    """Zero rows and columns around each image: an int, (rows, cols) or
    ((top, bottom), (left, right))."""

    _KIND = "ZeroPadding2D"

    def __init__(self, padding=(1, 1), **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, int):
            pad = [[padding, padding], [padding, padding]]
        else:
            try:
                a, b = padding
                if isinstance(a, int) and isinstance(b, int):
                    pad = [[a, a], [b, b]]
                else:
                    pad = [_pair(a, "ZeroPadding2D padding"), _pair(b, "ZeroPadding2D padding")]
            except (TypeError, ValueError):
                raise ValueError(f"ZeroPadding2D: padding {padding!r}: expected an int, 2 ints or 2 pairs")
        self.padding = pad

    def spec(self):
        return {"type": "ZeroPadding2D", "padding": self.padding}
