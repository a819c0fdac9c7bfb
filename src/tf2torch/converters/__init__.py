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
    indexing,
    linear,
    norm,
    pool,
    preprocessing,
    recurrent,
    regularization,
    shape,
    spectral,
    tf_image_ops,
    tf_ops,
    tf_shape_ops,
)
