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
    "register_layer",
    "supported_layers",
    "unregister_layer",
]
__version__ = "0.1.0"
