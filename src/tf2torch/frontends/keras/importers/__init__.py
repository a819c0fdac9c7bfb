"""Importer modules. Imported explicitly so the registry is filled in a known order."""

from tf2torch.frontends.keras.importers import (  # noqa: F401
    activations,
    applications,
    attention,
    audio,
    augmentation,
    conv,
    core,
    encoding,
    lambda_layer,
    merge,
    normalization,
    op_nodes,
    ops,
    pooling,
    preprocessing,
    recurrent,
    reshaping,
)
