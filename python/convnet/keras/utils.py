"""`to_categorical`, `set_random_seed` and `Progbar`, as in `keras.utils`."""

import math
import sys
import time

import numpy as np

__all__ = ["to_categorical", "set_random_seed", "clear_session", "Progbar", "load_img", "img_to_array"]


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


def load_img(path, color_mode="rgb", target_size=None, interpolation="bilinear"):
    """Keras 3's `keras.utils.load_img` (see `preprocessing.image.load_img`)."""
    from .preprocessing.image import load_img as load

    return load(path, color_mode, target_size, interpolation)


def img_to_array(img, dtype="float32"):
    """Keras 3's `keras.utils.img_to_array`: `[H, W, C]` values 0..255."""
    from .preprocessing.image import img_to_array as to_array

    return to_array(img, dtype)


def clear_session():
    """Starts Keras's automatic layer and model names again (`dense`, `dense_1`, ...)."""
    from .layers import _uids

    _uids.clear()


def set_random_seed(seed):
    """Seeds the weights and shuffles of every model built from now on."""
    from .models import _set_seed

    _set_seed(int(seed))


class Progbar:
    """Keras's progress bar: `update(current, [(name, value), ...])`.

    `verbose=1`: ` 12/469 ━━━━━━━━━━━━━━━━━━━━ 3s 8ms/step - accuracy: 0.8 - loss: 0.6`,
    redrawn in place at most every `interval` seconds and at the end;
    `verbose=2`: one line when the bar finishes. Metrics named in
    `stateful_metrics` are shown as given, the others averaged over steps.
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None, unit_name="step"):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stateful_metrics = set(stateful_metrics or ())
        self.seen = 0
        self._values = {}
        self._order = []
        self._start = time.time()
        self._last_update = 0.0
        self._after_first_step = None
        self._prev_width = 0

    def update(self, current, values=None, finalize=None):
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for k, v in values or []:
            if k not in self._order:
                self._order.append(k)
            if k in self.stateful_metrics or finalize:
                self._values[k] = [v, 1]
            else:
                n = max(current - self.seen, 1)
                total, count = self._values.get(k, [0.0, 0])
                self._values[k] = [total + v * n, count + n]
        self.seen = current
        now = time.time()
        per_step = self._step_time(current, now)
        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return
            self._draw(current, now, per_step, finalize)
        elif self.verbose == 2 and finalize and self.target:
            digits = int(math.log10(self.target)) + 1
            line = f"{current:{digits}d}/{self.target} - {now - self._start:.0f}s -{_per_unit(per_step, self.unit_name)}"
            _write(line + self._metrics() + "\n")
        self._last_update = now

    def add(self, n, values=None):
        self.update(self.seen + n, values)

    def _draw(self, current, now, per_step, finalize):
        if self.target:
            digits = int(math.log10(self.target)) + 1
            count = f"{current:{digits}d}/{self.target}"
            done = int(self.width * current / self.target)
            bar = f"\x1b[1m{count}\x1b[0m "
            if done > 0:
                bar += f"\x1b[32m{'━' * done}\x1b[0m"
            bar += f"\x1b[37m{'━' * (self.width - done)}\x1b[0m"
            plain = len(count) + 1 + self.width
        else:
            bar = f"{current:7d}/Unknown"
            plain = len(bar)
        if self.target and not finalize:
            eta = per_step * (self.target - current)
            if eta > 3600:
                when = f"{int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}"
            elif eta > 60:
                when = f"{int(eta // 60)}:{int(eta % 60):02d}"
            else:
                when = f"{int(eta)}s"
        else:
            when = f"{now - self._start:.0f}s"
        info = f" \x1b[1m{when}\x1b[0m" + _per_unit(per_step, self.unit_name) + self._metrics()
        width = plain + len(info) - 8
        pad = " " * max(self._prev_width - width, 0)
        _write("\r" + bar + info + pad + ("\n" if finalize else ""))
        self._prev_width = width

    def _metrics(self):
        out = ""
        for k in self._order:
            total, count = self._values[k]
            avg = total / max(1, count)
            out += f" - {k}: {avg:.4f}" if abs(avg) > 1e-3 else f" - {k}: {avg:.4e}"
        return out

    def _step_time(self, current, now):
        """Seconds per step, leaving out the first (slower) step once there are more."""
        if not current:
            return 0.0
        if self._after_first_step is not None and current > 1:
            return (now - self._after_first_step) / (current - 1)
        if current == 1:
            self._after_first_step = now
        return (now - self._start) / current


def _per_unit(seconds, unit):
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/{unit}"
    return f" {seconds * 1e6:.0f}us/{unit}"


def _write(text):
    sys.stdout.write(text)
    sys.stdout.flush()
