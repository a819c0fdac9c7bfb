"""Converter modules, one per op family. Imported explicitly to fill the registry."""

from tf2torch.converters import (  # noqa: F401
    activation,
    attention,
    conv,
    custom,
    elementwise,
    indexing,
    linear,
    norm,
    pool,
    preprocessing,
    recurrent,
    regularization,
    shape,
    tf_image_ops,
    tf_ops,
    tf_shape_ops,
)
