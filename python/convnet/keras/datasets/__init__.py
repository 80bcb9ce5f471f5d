"""Keras's data sets, from the copies convnet has (no download)."""

from . import fashion_mnist, mnist

__all__ = ["mnist", "fashion_mnist"]
