"""Keras's models: `Sequential`, the functional `Model(inputs, outputs)`, `load_model`.

A model describes itself as convnet's model description (the JSON of
`model.json`) and hands it to the engine (`convnet._core.Engine`), which
builds it on first use and trains it through the same run pipeline as the
`convnet` command line.
"""

import json
import os
import random

import numpy as np

from .. import _core
from . import _summary
from . import layers as _layers
from . import losses as _losses
from . import optimizers as _optimizers
from .callbacks import Callback, History, LearningRateScheduler, ProgbarLogger, ReduceLROnPlateau, _Hooks

__all__ = ["Model", "Sequential", "load_model"]

_seeds = random.Random()


def _set_seed(seed):
    """Seeds the weights of every model built from now on (`utils.set_random_seed`)."""
    _seeds.seed(seed)


def _f32(a, what):
    try:
        return np.ascontiguousarray(a, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: expected an array of numbers ({e})") from None


class Model:
    """A model: Keras's methods (`compile`, `fit`, `evaluate`, `predict`,
    `summary`, `count_params`, `save`, `get_weights`, `set_weights`).

    `Model(inputs, outputs)` is the functional API; `seed=` (not in Keras)
    fixes the initial weights and the shuffles (otherwise drawn as
    `convnet.keras.utils.set_random_seed` says, or at random).
    """

    def __init__(self, inputs=None, outputs=None, name=None, seed=None):
        self.name = name or _layers._auto_name("functional")
        self._seed = seed
        self._engine = None
        self._compiled = None
        self._metrics = []
        self.stop_training = False
        self._graph = None
        if inputs is not None or outputs is not None:
            self._graph = _Graph(inputs, outputs)

    # -- description and engine ---------------------------------------------

    def _spec(self):
        if self._graph is None:
            raise ValueError("Model: give inputs and outputs (the functional API), or use Sequential")
        return self._graph.spec()

    @property
    def engine(self):
        """The built model (built on first use from the description)."""
        if self._engine is None:
            seed = self._seed if self._seed is not None else _seeds.getrandbits(63)
            self._engine = _core.Engine.build(json.dumps(self._spec()), seed)
        return self._engine

    @property
    def layers(self):
        """The layers, in order."""
        return list(self._graph.layers) if self._graph else []

    @property
    def input_shape(self):
        return (None,) + tuple(self.engine.input_shape)

    @property
    def output_shape(self):
        return (None,) + tuple(self.engine.output_shape)

    # -- Keras's methods -------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Sets the optimizer (a name or a `convnet.keras.optimizers` object)
        and the loss (Keras's names); `metrics` may ask for `accuracy`, which
        is always computed."""
        for key in kwargs:
            raise TypeError(f"compile: unsupported argument {key!r}")
        opt = _optimizers.get(optimizer)
        if loss is None:
            raise ValueError("compile: give a loss (e.g. 'categorical_crossentropy')")
        loss_name = _losses.get(loss)
        for m in metrics or []:
            if getattr(m, "__name__", m) not in ("accuracy", "acc"):
                raise ValueError(f"compile: metric {m!r}: only 'accuracy' is computed")
        self._metrics = list(metrics or [])
        self._compiled = self.engine.compile(json.dumps(opt.config()), loss_name)
        self.optimizer = opt
        self.loss = loss_name

    def _targets(self, y, what):
        """`y` as the engine takes it: float32; class indices `[N]` for
        sparse losses, one row per sample otherwise (`[N, 1]` for one output)."""
        y = _f32(y, what)
        outputs = int(np.prod(self.engine.output_shape))
        if self._compiled is not None and "sparse" in self._compiled:
            if y.ndim == 2 and y.shape[1] == 1:
                y = np.ascontiguousarray(y.reshape(-1))
        elif outputs == 1 and y.ndim == 1:
            y = np.ascontiguousarray(y.reshape(-1, 1))
        return y

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        initial_epoch=0,
        precision=None,
    ):
        """Trains as Keras's `fit` does and returns a `History`.

        `x` is an array (`y` its targets) or a generator from
        `ImageDataGenerator.flow`/`flow_from_directory`. `precision`
        (not in Keras): `"mixed_bfloat16"` trains in bf16 where the CPU can."""
        if self._compiled is None:
            raise RuntimeError("compile the model before fit")
        if hasattr(x, "_convnet_fit"):
            return x._convnet_fit(self, epochs, verbose, callbacks, validation_data, initial_epoch, shuffle, precision)
        if x is None or y is None:
            raise ValueError("fit: give x and y (or a generator as x)")
        x = _f32(x, "x")
        y = self._targets(y, "y")
        if len(x) != len(y):
            raise ValueError(f"fit: x has {len(x)} samples but y has {len(y)}")
        vx = vy = None
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("fit: validation_data must be (x, y)")
            vx = _f32(validation_data[0], "validation_data x")
            vy = self._targets(validation_data[1], "validation_data y")
        return self._run_fit(
            x, y, vx, vy, batch_size, epochs, verbose, callbacks, validation_split, shuffle, initial_epoch, precision
        )

    def _run_fit(self, x, y, vx, vy, batch_size, epochs, verbose, callbacks, validation_split, shuffle,
                 initial_epoch, precision, augment=None):
        def call(settings):
            return self.engine.fit(
                x, y, validation_x=vx, validation_y=vy, validation_split=float(validation_split),
                augment=augment, **settings,
            )

        return self._pass(call, batch_size, epochs, verbose, callbacks, shuffle, initial_epoch, precision)

    def _run_fit_directory(self, directory, validation_split, augment, batch_size, epochs, verbose, callbacks,
                           shuffle, initial_epoch, precision, seed):
        def call(settings):
            return self.engine.fit_directory(
                directory, validation_split=float(validation_split), augment=augment, seed=seed, **settings
            )

        return self._pass(call, batch_size, epochs, verbose, callbacks, shuffle, initial_epoch, precision)

    def _pass(self, call, batch_size, epochs, verbose, callbacks, shuffle, initial_epoch, precision):
        """One `fit`: the engine's pass with Keras's settings, the Python
        callbacks (the progress bar first) called live by the engine, and
        the `History`."""
        verbose = 1 if verbose == "auto" else int(verbose)
        own, schedule, python = _split_callbacks(callbacks)
        if verbose:
            python.insert(0, ProgbarLogger())
        hooks = _Hooks(python, self, {"epochs": epochs, "verbose": verbose, "shown": self._shown(callbacks)})
        self.stop_training = False
        for cb in python:
            cb.on_train_begin()
        hist, first, seconds = call(
            dict(
                batch_size=batch_size or 32,
                epochs=epochs,
                initial_epoch=initial_epoch,
                shuffle=bool(shuffle),
                verbose=0,
                callbacks=json.dumps(own),
                lr_schedule=schedule,
                precision=precision,
                hooks=hooks,
            )
        )
        history = History()
        history.set_model(self)
        history.history = hist
        history.epoch = list(range(first, first + len(hist["loss"])))
        history.params = {"epochs": epochs, "verbose": verbose, "steps": hooks.params.get("steps")}
        self._fit_seconds = seconds  # the pass alone, as the CLI's "Trained ... in Xs" (benchmarks)
        for cb in python:
            cb.on_train_end()
        self.history = history
        return history

    def _shown(self, callbacks):
        """The logs the progress bar shows, as Keras would: the loss, the
        accuracy when `compile` asked for it, the learning rate when a
        callback changes it."""
        shown = ["loss", "val_loss"]
        if self._metrics:
            shown += ["accuracy", "val_accuracy"]
        if any(isinstance(cb, (LearningRateScheduler, ReduceLROnPlateau)) for cb in callbacks or []):
            shown.append("learning_rate")
        return shown

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False):
        """`[loss, accuracy]` (a dict with `return_dict=True`); `x` may be a
        generator from `ImageDataGenerator.flow`/`flow_from_directory`."""
        if hasattr(x, "_convnet_evaluate"):
            loss, acc = x._convnet_evaluate(self, batch_size)
        else:
            loss, acc = self.engine.evaluate(_f32(x, "x"), self._targets(y, "y"), batch_size or 32)
        if return_dict:
            return {"loss": loss, "accuracy": acc}
        return [loss, acc]

    def predict(self, x, batch_size=None, verbose="auto"):
        """The model's outputs for `x` (an array, or a generator), as a float32 array `[N, ...]`."""
        if hasattr(x, "_convnet_predict"):
            return x._convnet_predict(self, batch_size)
        return self.engine.predict(_f32(x, "x"), batch_size or 32)

    def summary(self, line_length=None, positions=None, print_fn=None):
        """Prints Keras 3's table of layers, output shapes, parameter counts
        (and connections, for graphs with branches), then the totals."""
        _summary.print_summary(self, line_length, positions, print_fn)

    def _input_name(self):
        return self._graph.input.name if self._graph is not None else "input_layer"

    def count_params(self):
        """Every parameter, trainable or not (batch norm's moving statistics too), as Keras counts."""
        trainable, fixed = self.engine.count_params()
        return trainable + fixed

    def get_weights(self):
        """The parameters as arrays, in the model's order."""
        return [a for _, a in self.engine.get_weights()]

    def set_weights(self, weights):
        """Replaces the parameters (arrays in `get_weights`'s order and shapes)."""
        self.engine.set_weights([_f32(w, "weights") for w in weights])

    def save(self, filepath):
        """Writes the model into the folder `filepath` (`model.json`,
        `weights.safetensors`: the model files of a run folder)."""
        self.engine.save(os.fspath(filepath))

    def to_json(self):
        """The model's description (convnet's `model.json` content)."""
        return self.engine.spec_json()


class _Described(Model):
    """A model from a description the engine wrote (the notation, a built-in net)."""

    def __init__(self, spec_json, name, seed=None):
        super().__init__(name=name, seed=seed)
        self._description = json.loads(spec_json)

    def _spec(self):
        return self._description


class Sequential(Model):
    """A stack of layers: `Sequential([...])` or `model.add(layer)`; the
    first layer takes `input_shape=` (or add an `Input(shape)` first)."""

    def __init__(self, layers=None, name=None, seed=None):
        super().__init__(name=name or _layers._auto_name("sequential"), seed=seed)
        self._layers = []
        self._input_shape = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        """Appends a layer."""
        if self._engine is not None:
            raise ValueError("Sequential.add: the model is already built; add layers before using it")
        if isinstance(layer, _layers.KerasTensor) and isinstance(layer.node, _layers.InputLayer):
            self._input_shape = layer.node.shape
            return
        if not isinstance(layer, _layers.Layer):
            raise ValueError(f"Sequential.add: expected a layer, found {type(layer).__name__}")
        if not self._layers and self._input_shape is None:
            if layer.input_shape is None:
                raise ValueError(
                    f"Sequential: the first layer ({layer.kind}) needs input_shape=, "
                    "or add Input(shape=...) first"
                )
            self._input_shape = layer.input_shape
        self._layers.append(layer)

    @property
    def layers(self):
        return list(self._layers)

    def _spec(self):
        if not self._layers:
            raise ValueError("Sequential: add layers before using the model")
        nodes = []
        for layer in self._layers:
            node = layer.spec()
            if layer.name is not None:
                node["name"] = layer.name
            if not layer.trainable:
                node["trainable"] = False
            nodes.append(node)
        return {"input_shape": list(self._input_shape), "layers": nodes}


class _Graph:
    """The functional API's graph, from the outputs back to the input."""

    def __init__(self, inputs, outputs):
        ins = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        if len(ins) != 1 or not isinstance(ins[0], _layers.KerasTensor) or not isinstance(ins[0].node, _layers.InputLayer):
            raise ValueError("Model: inputs must be one Input(shape=...) tensor")
        if len(outs) != 1 or not isinstance(outs[0], _layers.KerasTensor):
            raise ValueError("Model: outputs must be one tensor (a layer's output)")
        self.input = ins[0].node
        order, seen = [], set()

        def visit(node):
            if id(node) in seen or isinstance(node, _layers.InputLayer):
                return
            seen.add(id(node))
            for t in node.inputs:
                visit(t.node)
            order.append(node)

        visit(outs[0].node)
        if not self._reaches_input(outs[0].node):
            raise ValueError("Model: the outputs do not depend on the given input")
        self.nodes = order
        self.layers = [n.layer for n in order]

    def _reaches_input(self, node):
        if isinstance(node, _layers.InputLayer):
            return node is self.input
        return all(self._reaches_input(t.node) for t in node.inputs)

    def spec(self):
        names, taken = {}, set()
        for n in self.nodes:
            if n.layer.name is not None:
                if n.layer.name in taken:
                    raise ValueError(f"Model: two layers are named {n.layer.name!r}")
                taken.add(n.layer.name)
        for n in self.nodes:
            name = n.layer.name
            if name is None:
                base = _layers._snake(n.layer.kind)
                name, k = base, 0
                while name in taken:
                    k += 1
                    name = f"{base}_{k}"
                taken.add(name)
            names[id(n)] = name
        layers = []
        for n in self.nodes:
            node = n.layer.spec()
            node["name"] = names[id(n)]
            node["inputs"] = ["input" if isinstance(t.node, _layers.InputLayer) else names[id(t.node)] for t in n.inputs]
            if not n.layer.trainable:
                node["trainable"] = False
            layers.append(node)
        return {"input_shape": list(self.input.shape), "layers": layers}


def _split_callbacks(callbacks):
    """The engine's callbacks (JSON), the learning-rate function, and the
    Python callbacks called with each epoch's logs after the pass."""
    own, schedule, python = [], None, []
    for cb in callbacks or []:
        if isinstance(cb, LearningRateScheduler):
            schedule = cb.schedule_fn
        elif hasattr(cb, "engine_config"):
            own.append(cb.engine_config())
        elif isinstance(cb, Callback):
            python.append(cb)
        else:
            raise ValueError(f"fit: callback {cb!r} is not a convnet.keras.callbacks.Callback")
    return own, schedule, python


def load_model(filepath):
    """A model saved by `Model.save` (or any `convnet` run folder)."""
    model = Model(name=os.path.basename(os.fspath(filepath)))
    model._engine = _core.Engine.load(os.fspath(filepath))
    return model
