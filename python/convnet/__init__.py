"""convnet: convolutional neural networks on a Rust core.

`convnet.keras` mirrors Keras's modules (`models`, `layers`, `optimizers`,
`callbacks`, `datasets`, `utils`, `preprocessing.image`), so Keras code runs
with its import lines changed from `keras.` to `convnet.keras.`.
"""

from . import _core
from . import keras

__all__ = ["keras", "build", "cpu_info"]


def cpu_info():
    """Which kernel paths this CPU takes: {"avx512": bool, "bf16": bool}."""
    avx512, bf16 = _core.cpu_info()
    return {"avx512": avx512, "bf16": bf16}


def build(notation, input_shape=None, padding="same", activation="relu", seed=None):
    """A Keras model from convnet's compact notation, e.g.
    `convnet.build("32C5-P2-64C5-P2-128-D0.4-10")` (input 28x28x1 unless
    `input_shape` or the notation gives one); compile and fit it as any model."""
    from .keras.models import _Described

    spec = _core.notation_spec(notation, list(input_shape) if input_shape else None, padding, activation)
    return _Described(spec, name=notation, seed=seed)
