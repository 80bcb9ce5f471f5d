"""`convnet.keras.preprocessing.image`: Keras's `ImageDataGenerator`."""

from . import image

__all__ = ["image"]
