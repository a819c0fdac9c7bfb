"""tf2torch: convert TensorFlow / Keras models into readable, trainable PyTorch."""

from tf2torch.api import ConversionResult, convert
from tf2torch.errors import ConversionError, UnsupportedLayers
from tf2torch.frontends.keras.custom import CustomLayer, register_layer, unregister_layer
from tf2torch.inspect_model import supported_layers

__all__ = [
    "ConversionError",
    "ConversionResult",
    "CustomLayer",
    "UnsupportedLayers",
    "convert",
    "optimize_for_inference",
    "register_layer",
    "supported_layers",
    "unregister_layer",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # optimize_for_inference imports torch: loaded on first use, so that `import tf2torch`
    # (and `tf2torch convert`) stays free of torch.
    if name == "optimize_for_inference":
        from tf2torch.optimize import optimize_for_inference

        return optimize_for_inference
    raise AttributeError(f"module 'tf2torch' has no attribute {name!r}")
