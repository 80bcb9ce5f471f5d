"""Keras's `ImageDataGenerator`: random transforms of training images.

The transforms run in the engine (the data crate's `Augmented`, the same
code as `convnet train --rotation ...`): one affine map per image composed
as Keras composes it, one bilinear resampling, then flips and brightness.
`flow(x, y)` trains on arrays, `flow_from_directory(dir)` on a folder of
class sub-folders decoded as batches need them (memory bounded); `fit`
takes either as Keras's does, and iterating one yields Keras's batches.
"""

import json
import os

import numpy as np

from ... import _core

__all__ = ["ImageDataGenerator", "NumpyArrayIterator", "DirectoryIterator", "load_img", "img_to_array"]

# What the engine's folder loader reads.
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


class _Image:
    """What `load_img` returns (Keras returns a PIL image): the pixels,
    `.size` as `(width, height)`, `.mode`; `img_to_array` or `np.asarray`
    turn it into an array."""

    def __init__(self, pixels, mode):
        self._pixels = pixels
        self.mode = mode

    @property
    def size(self):
        return (self._pixels.shape[1], self._pixels.shape[0])

    def __array__(self, dtype=None, copy=None):
        px = self._pixels if self.mode == "RGB" else self._pixels[..., 0]
        return px if dtype is None else px.astype(dtype)


def load_img(path, color_mode="rgb", target_size=None, interpolation="bilinear"):
    """An image file as Keras's `load_img` gives it, decoded by the engine
    (the code training reads files with); `target_size` `(height, width)`
    resizes bilinearly."""
    if color_mode not in ("rgb", "grayscale"):
        raise ValueError(f"load_img: color_mode {color_mode!r}: expected 'rgb' or 'grayscale'")
    if interpolation != "bilinear":
        raise ValueError(f"load_img: interpolation {interpolation!r}: only 'bilinear' (as training reads files)")
    channels = 3 if color_mode == "rgb" else 1
    target = None if target_size is None else (int(target_size[0]), int(target_size[1]))
    pixels = _core.load_img(os.fspath(path), channels, target)
    return _Image(pixels, "RGB" if channels == 3 else "L")


def img_to_array(img, dtype="float32"):
    """Keras's `img_to_array`: `[H, W, C]` values 0..255 (not rescaled)."""
    a = np.asarray(img, dtype=dtype)
    return a[..., None] if a.ndim == 2 else a


def _range(value, what):
    value = float(value)
    if value < 0:
        raise ValueError(f"ImageDataGenerator: {what} must be >= 0, found {value!r}")
    return value


class ImageDataGenerator:
    """Random rotations, shifts, shear, zoom, flips and brightness, with
    Keras's arguments; `rescale` multiplies the pixels; `validation_split`
    holds out a fraction for `subset="validation"`."""

    def __init__(
        self,
        rescale=None,
        rotation_range=0,
        width_shift_range=0.0,
        height_shift_range=0.0,
        shear_range=0.0,
        zoom_range=0.0,
        horizontal_flip=False,
        vertical_flip=False,
        brightness_range=None,
        fill_mode="nearest",
        cval=0.0,
        validation_split=0.0,
        **kwargs,
    ):
        for key, value in kwargs.items():
            if value:
                raise ValueError(f"ImageDataGenerator: {key} is not supported")
        if isinstance(zoom_range, (list, tuple)):
            lo, hi = zoom_range
            if abs((1 - lo) - (hi - 1)) > 1e-6:
                raise ValueError("ImageDataGenerator: zoom_range [lo, hi] must be symmetric around 1")
            zoom_range = hi - 1
        if fill_mode not in ("constant", "nearest", "reflect", "wrap"):
            raise ValueError(f"ImageDataGenerator: fill_mode {fill_mode!r}: expected constant, nearest, reflect or wrap")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"ImageDataGenerator: validation_split must be in [0, 1), found {validation_split!r}")
        self.rescale = rescale
        self.rotation_range = _range(rotation_range, "rotation_range")
        self.width_shift_range = _range(width_shift_range, "width_shift_range")
        self.height_shift_range = _range(height_shift_range, "height_shift_range")
        self.shear_range = _range(shear_range, "shear_range")
        self.zoom_range = _range(zoom_range, "zoom_range")
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        self.brightness_range = None if brightness_range is None else [float(v) for v in brightness_range]
        self.fill_mode = fill_mode
        self.cval = float(cval)
        self.validation_split = float(validation_split)

    def augment_config(self, scale=1.0):
        """The transforms as the engine's `AugmentConfig` (JSON); `cval` in
        the scaled pixels' units, as Keras fills before rescaling."""
        return json.dumps(
            {
                "rotation_range": self.rotation_range,
                "width_shift_range": self.width_shift_range,
                "height_shift_range": self.height_shift_range,
                "shear_range": self.shear_range,
                "zoom_range": self.zoom_range,
                "horizontal_flip": self.horizontal_flip,
                "vertical_flip": self.vertical_flip,
                "brightness_range": self.brightness_range,
                "fill_mode": self.fill_mode,
                "cval": self.cval * scale,
            }
        )

    def flow(self, x, y=None, batch_size=32, shuffle=True, seed=None, subset=None):
        """Batches of transformed `x` (and `y`)."""
        return NumpyArrayIterator(self, x, y, batch_size, shuffle, seed, subset)

    def flow_from_directory(
        self,
        directory,
        target_size=(256, 256),
        color_mode="rgb",
        class_mode="categorical",
        batch_size=32,
        shuffle=True,
        seed=None,
        subset=None,
    ):
        """Batches of images from `directory`'s class sub-folders (one
        class per sub-folder, in sorted order), resized to `target_size`."""
        return DirectoryIterator(self, directory, target_size, color_mode, class_mode, batch_size, shuffle, seed, subset)


def _subset(subset, split):
    if subset not in (None, "training", "validation"):
        raise ValueError(f"subset {subset!r}: expected 'training' or 'validation'")
    if subset is not None and split == 0.0:
        raise ValueError("subset needs ImageDataGenerator(validation_split=...)")
    return subset


class NumpyArrayIterator:
    """`ImageDataGenerator.flow(x, y)`: `fit` trains on it with the
    transforms applied in the engine; iterating yields transformed batches."""

    def __init__(self, gen, x, y, batch_size, shuffle, seed, subset):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise ValueError(f"flow: x must be images [N, H, W, C], found shape {x.shape}")
        if y is not None and len(y) != len(x):
            raise ValueError(f"flow: x has {len(x)} samples but y has {len(y)}")
        subset = _subset(subset, gen.validation_split)
        # Keras's rule: the validation subset is the first fraction.
        cut = int(len(x) * gen.validation_split)
        part = slice(0, cut) if subset == "validation" else slice(cut, len(x)) if subset else slice(0, len(x))
        scale = 1.0 if gen.rescale is None else float(gen.rescale)
        self.generator = gen
        self.scale = scale
        self.x = np.ascontiguousarray(x[part] * np.float32(scale))
        self.y = None if y is None else np.asarray(y)[part]
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = 0 if seed is None else int(seed)
        self._epoch = 0
        self._order = None
        self._at = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        return self

    def __next__(self):
        if self._order is None or self._at >= len(self.x):
            rng = np.random.default_rng(self.seed + self._epoch)
            self._order = rng.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))
            self._epoch += 1
            self._at = 0
        idx = self._order[self._at : self._at + self.batch_size]
        self._at += len(idx)
        batch = _core.augment(np.ascontiguousarray(self.x[idx]), self.generator.augment_config(self.scale), self.seed * 1_000_003 + self._epoch * 7919 + self._at)
        return batch if self.y is None else (batch, self.y[idx])

    def _convnet_evaluate(self, model, batch_size):
        """`evaluate(flow(x, y))`: the rescaled arrays, without the random transforms."""
        if self.y is None:
            raise ValueError("evaluate: the generator has no targets (flow(x, y))")
        return model.evaluate(self.x, self.y, batch_size=batch_size or self.batch_size)

    def _convnet_predict(self, model, batch_size):
        """`predict(flow(x))`: the outputs for the rescaled `x`, in its order."""
        return model.predict(self.x, batch_size=batch_size or self.batch_size)

    def _convnet_fit(self, model, epochs, verbose, callbacks, validation_data, initial_epoch, shuffle, precision):
        if self.y is None:
            raise ValueError("fit: the generator has no targets (flow(x, y))")
        vx = vy = None
        if isinstance(validation_data, NumpyArrayIterator):
            vx, vy = validation_data.x, model._targets(validation_data.y, "validation y")
        elif validation_data is not None:
            vx, vy = np.ascontiguousarray(validation_data[0], dtype=np.float32), model._targets(validation_data[1], "validation y")
        return model._run_fit(
            self.x, model._targets(self.y, "y"), vx, vy, self.batch_size, epochs, verbose, callbacks,
            0.0, self.shuffle and shuffle, initial_epoch, precision, augment=self.generator.augment_config(self.scale),
        )


class DirectoryIterator:
    """`ImageDataGenerator.flow_from_directory(dir)`: `fit` trains on the
    folder through the engine's image-folder loader (decoded per batch,
    pixels in [0, 1], so `rescale` must be 1/255 as in Keras's tutorials)."""

    def __init__(self, gen, directory, target_size, color_mode, class_mode, batch_size, shuffle, seed, subset):
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            raise OSError(f"flow_from_directory: no folder {directory!r}")
        if gen.rescale is None or abs(float(gen.rescale) - 1 / 255) > 1e-9:
            raise ValueError("flow_from_directory: images are read as pixels / 255; use rescale=1./255")
        if color_mode not in ("rgb", "grayscale"):
            raise ValueError(f"flow_from_directory: color_mode {color_mode!r}: expected 'rgb' or 'grayscale'")
        if class_mode not in ("categorical", "binary", "sparse"):
            raise ValueError(f"flow_from_directory: class_mode {class_mode!r}: expected categorical, binary or sparse")
        self.generator = gen
        self.directory = directory
        self.target_size = tuple(target_size)
        self.channels = 3 if color_mode == "rgb" else 1
        self.class_mode = class_mode
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = 42 if seed is None else int(seed)
        self.subset = _subset(subset, gen.validation_split)
        names = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)))
        self.class_indices = {c: i for i, c in enumerate(names)}
        # Keras's attributes: every image file (class folder, then name, sorted) and its class.
        self._paths, labels = [], []
        for i, c in enumerate(names):
            files = sorted(f for f in os.listdir(os.path.join(directory, c)) if f.lower().endswith(_IMAGE_EXTENSIONS))
            self._paths += [os.path.join(directory, c, f) for f in files]
            labels += [i] * len(files)
        self.filenames = [os.path.relpath(p, directory) for p in self._paths]
        self.classes = np.array(labels, dtype=np.int32)
        self.num_classes = len(names)

    def __len__(self):
        return -(-self.samples // self.batch_size)

    @property
    def samples(self):
        """Images in the folder's class sub-folders (this subset's share)."""
        n = len(self._paths)
        val = int(n * self.generator.validation_split)
        return val if self.subset == "validation" else n - val if self.subset else n

    def _convnet_evaluate(self, model, batch_size):
        """`evaluate(flow)`: the subset's images, read as `fit` reads them (no random transforms)."""
        self._check(model)
        split = self.generator.validation_split if self.subset else 0.0
        return model.engine.evaluate_directory(self.directory, validation_split=split, subset=self.subset,
                                               seed=self.seed, batch_size=batch_size or self.batch_size)

    def _convnet_predict(self, model, batch_size):
        """`predict(flow)`: the outputs for `filenames`, in that order (Keras's with `shuffle=False`)."""
        if self.subset is not None:
            raise ValueError("predict: a subset's files are drawn at random; predict on the folder "
                             "(no subset), whose outputs follow .filenames")
        self._check(model)
        return model.engine.predict_files(self._paths, batch_size or self.batch_size)

    def _check(self, model):
        want = tuple(model.engine.input_shape)
        if want != self.target_size + (self.channels,):
            raise ValueError(
                f"flow_from_directory: target_size {self.target_size} and {self.channels} channel(s), "
                f"but the model takes {want}"
            )
        outputs = int(np.prod(model.engine.output_shape))
        if (self.class_mode == "binary") != (outputs == 1):
            raise ValueError(f"flow_from_directory: class_mode {self.class_mode!r} for a model with {outputs} outputs")

    def _convnet_fit(self, model, epochs, verbose, callbacks, validation_data, initial_epoch, shuffle, precision):
        self._check(model)
        split = 0.0
        if validation_data is not None:
            if not (isinstance(validation_data, DirectoryIterator) and validation_data.subset == "validation"
                    and validation_data.directory == self.directory and self.subset == "training"):
                raise ValueError(
                    "fit: validation_data for flow_from_directory must be the same folder's subset='validation'"
                )
            split = self.generator.validation_split
        elif self.subset == "training":
            split = self.generator.validation_split
        return model._run_fit_directory(
            self.directory, split, self.generator.augment_config(), self.batch_size, epochs, verbose,
            callbacks, self.shuffle and shuffle, initial_epoch, precision, self.seed,
        )
