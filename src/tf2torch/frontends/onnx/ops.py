"""Every ONNX op importer module, imported once so that each registers its ops (explicitly listed)."""

from tf2torch.frontends.onnx import (  # noqa: F401
    conv,
    elementwise,
    linear,
    loop_rnn,
    pool,
    recurrent,
    reduction,
    shape_ops,
    spatial,
)
