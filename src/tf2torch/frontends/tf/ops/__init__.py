"""TF op importers, one module per family. Imported explicitly to fill the registry."""

from tf2torch.frontends.tf.ops import (  # noqa: F401
    array,
    control,
    core,
    dilation,
    fft,
    image,
    lists,
    math,
    nn,
    random,
    segments,
    shapes,
)
