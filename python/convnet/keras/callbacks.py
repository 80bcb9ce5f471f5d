"""Keras's callbacks. `EarlyStopping`, `ModelCheckpoint`, `ReduceLROnPlateau`
and `CSVLogger` run inside the engine's training loop (the nn crate's, as
for the CLI); `BackupAndRestore` is the run pipeline's checkpoints and resume;
`LearningRateScheduler` calls its function at each epoch's start. Other
`Callback` subclasses (and `ProgbarLogger`, Keras's progress bar) are called
live from the training loop, as Keras calls them: `on_epoch_begin`,
`on_train_batch_end`, `on_epoch_end(epoch, logs)`; setting
`self.model.stop_training = True` stops after the epoch. (While `fit` runs,
the model's weights are the engine's: read them in `on_train_end` or after.)"""

import os
import sys

from .utils import Progbar

__all__ = [
    "Callback",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "LearningRateScheduler",
    "CSVLogger",
    "BackupAndRestore",
    "ProgbarLogger",
]


class Callback:
    """The base of Keras's callbacks."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


class ProgbarLogger(Callback):
    """Keras's progress bar: `Epoch 1/5`, then a bar updated as batches end
    (`verbose=1`) or one line per epoch (`verbose=2`), with the running
    loss and accuracy, then the validation metrics. `fit` adds it."""

    def __init__(self):
        super().__init__()
        self.progbar = None

    def on_epoch_begin(self, epoch, logs=None):
        verbose = self.params.get("verbose", 1)
        self.progbar = Progbar(None, verbose=verbose, stateful_metrics=self.params.get("shown", ()))
        if verbose:
            sys.stdout.write(f"Epoch {epoch + 1}/{self.params['epochs']}\n")
            sys.stdout.flush()

    def _shown(self, logs):
        shown = self.params.get("shown", ())
        return [(k, v) for k, v in logs.items() if k in shown]

    def on_train_batch_end(self, batch, logs=None):
        self.progbar.target = self.params.get("steps")
        self.progbar.update(batch + 1, self._shown(logs or {}), finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        bar = self.progbar
        bar.update(bar.target or bar.seen, self._shown(logs or {}), finalize=True)


class _Hooks:
    """What the engine calls during `fit` (Keras's `CallbackList`): the
    Python callbacks, a batch at a time only when one of them overrides
    `on_train_batch_end` (the progress bar is fed every 50 ms)."""

    def __init__(self, callbacks, model, params):
        self.callbacks = callbacks
        self.model = model
        self.params = params
        self.every_batch = any(
            type(cb).on_train_batch_end is not Callback.on_train_batch_end
            for cb in callbacks
            if not isinstance(cb, ProgbarLogger)
        )
        for cb in callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def on_epoch_begin(self, epoch):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, {})

    def on_batch_end(self, epoch, step, steps, loss, accuracy):
        self.params["steps"] = steps
        logs = {"accuracy": accuracy, "loss": loss}
        for cb in self.callbacks:
            cb.on_train_batch_end(step - 1, logs)

    def on_epoch_end(self, epoch, logs):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)
        return bool(getattr(self.model, "stop_training", False))


class History(Callback):
    """What `fit` returns: `.history` (`loss`, `accuracy`, `val_loss`,
    `val_accuracy`, `learning_rate`: one value per epoch) and `.epoch`."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []
        self.params = {}


def _monitor(monitor):
    known = ("loss", "accuracy", "val_loss", "val_accuracy")
    aliases = {"acc": "accuracy", "val_acc": "val_accuracy"}
    monitor = aliases.get(monitor, monitor)
    if monitor not in known:
        raise ValueError(f"monitor {monitor!r}: expected one of {', '.join(known)}")
    return monitor


class EarlyStopping(Callback):
    """Stops when `monitor` has not improved by `min_delta` for `patience` epochs."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, restore_best_weights=False):
        super().__init__()
        self.monitor = _monitor(monitor)
        self.min_delta = float(min_delta)
        self.patience = int(patience)
        self.restore_best_weights = bool(restore_best_weights)

    def engine_config(self):
        return {
            "class": "EarlyStopping",
            "monitor": self.monitor,
            "patience": self.patience,
            "min_delta": self.min_delta,
            "restore_best_weights": self.restore_best_weights,
        }


class ModelCheckpoint(Callback):
    """Saves the model into the folder `filepath` after each epoch (or only
    when `monitor` improves, with `save_best_only=True`)."""

    def __init__(self, filepath, monitor="val_loss", save_best_only=False):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = _monitor(monitor)
        self.save_best_only = bool(save_best_only)

    def engine_config(self):
        return {
            "class": "ModelCheckpoint",
            "filepath": self.filepath,
            "monitor": self.monitor,
            "save_best_only": self.save_best_only,
        }


class ReduceLROnPlateau(Callback):
    """Multiplies the rate by `factor` when `monitor` stalls for `patience` epochs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), found {factor!r}")
        self.monitor = _monitor(monitor)
        self.factor = float(factor)
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)

    def engine_config(self):
        return {
            "class": "ReduceLROnPlateau",
            "monitor": self.monitor,
            "factor": self.factor,
            "patience": self.patience,
            "min_delta": self.min_delta,
            "cooldown": self.cooldown,
            "min_lr": self.min_lr,
        }


class LearningRateScheduler(Callback):
    """`schedule(epoch, lr) -> new lr`, called at the start of each epoch."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise ValueError("LearningRateScheduler: schedule must be a function (epoch, lr) -> lr")
        self.schedule_fn = schedule


class CSVLogger(Callback):
    """Writes each epoch's logs to the CSV file `filename`."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if separator != ",":
            raise ValueError("CSVLogger: only ',' is supported as the separator")
        self.filename = os.fspath(filename)

    def engine_config(self):
        return {"class": "CSVLogger", "filename": self.filename}


class BackupAndRestore(Callback):
    """Checkpoints every epoch into `backup_dir` (weights, optimizer state,
    the shuffles' position: the `convnet train --resume` checkpoints); a
    `fit` that finds one there continues from it, so an interrupted fit
    (Ctrl-C, a kill, a crash) run again ends with the weights of one never
    interrupted. The backup is deleted when a fit finishes, unless
    `delete_checkpoint=False`."""

    def __init__(self, backup_dir, delete_checkpoint=True):
        super().__init__()
        self.backup_dir = os.fspath(backup_dir)
        self.delete_checkpoint = bool(delete_checkpoint)

    def engine_config(self):
        return {
            "class": "BackupAndRestore",
            "backup_dir": self.backup_dir,
            "delete_checkpoint": self.delete_checkpoint,
        }
