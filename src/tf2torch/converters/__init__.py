"""Converter modules, one per op family. Imported explicitly to fill the registry."""

from tf2torch.converters import (  # noqa: F401
    activation,
    attention,
    audio,
    augmentation,
    conv,
    custom,
    elementwise,
    encoding,
    linear,
    norm,
    pool,
    preprocessing,
    recurrent,
    regularization,
    shape,
    spectral,
    tf_ops,
)
