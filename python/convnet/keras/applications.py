"""The built-in architectures, with Keras's names where Keras has them.

`weights=None` only: convnet downloads nothing (the ImageNet-trained
EfficientNet-Lite0 comes in through `tools/pretrained/efficientnet_lite0.py`
as a run folder, which `load_model` opens)."""

from .. import _core
from .models import _Described

__all__ = [
    "VGG11", "VGG13", "VGG16", "VGG19", "ResNet18", "ResNet34", "ResNet20", "ResNet32", "ResNet56",
    "GoogLeNet", "MobileNetV2", "EfficientNetLite0", "EfficientNetB0", "get",
]


def get(name, input_shape=None, classes=None, weights=None, seed=None):
    """The built-in net `name` (`resnet20`, `vgg16-bn`, `mobilenet-v2`, ...)."""
    if weights is not None:
        raise ValueError(f"{name}: weights={weights!r}: only weights=None (convnet downloads nothing)")
    spec = _core.builtin_spec(name, list(input_shape) if input_shape else None, classes)
    return _Described(spec, name=name, seed=seed)


def _net(name):
    def make(weights=None, input_shape=None, classes=None, seed=None):
        return get(name, input_shape=input_shape, classes=classes, weights=weights, seed=seed)

    make.__name__ = name
    make.__doc__ = f"The built-in `{name}` (input and classes default to what it is made for)."
    return make


VGG11, VGG13, VGG16, VGG19 = (_net(n) for n in ("vgg11", "vgg13", "vgg16", "vgg19"))
ResNet18, ResNet34 = _net("resnet18"), _net("resnet34")
ResNet20, ResNet32, ResNet56 = _net("resnet20"), _net("resnet32"), _net("resnet56")
GoogLeNet, MobileNetV2 = _net("googlenet"), _net("mobilenet-v2")
EfficientNetLite0, EfficientNetB0 = _net("efficientnet-lite0"), _net("efficientnet-b0")
