"""tf.keras `TFOpLambda` / `SlicingOpLambda` calls outside the op table (op_calls.py): traced.

A raw `tf.<function>(x, ...)` in a tf.keras functional model names a TensorFlow API function
(`tile`, `gather`, `math.cumsum`, ...). Only TensorFlow's own function runs (looked up by its
API name, as tf.keras does), never code from the file, so no opt-in is needed; TensorFlow is.
The call is traced like a custom layer and converted op by op, then checked against Keras with
the rest of the model before anything is returned (api.convert: every traced layer is).
"""

from __future__ import annotations

from typing import Any

from tf2torch.codegen.naming import class_name as make_class_name
from tf2torch.frontends.tf.keras_layers import trace_layer


class _WithoutTraining:
    """The op layer as a traced call sees it: TF's functions take no `training` argument."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.name = layer.name

    def __call__(self, *args: Any, training: bool = False, **kwargs: Any) -> Any:
        return self.layer(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.layer, name)


def trace_tf_op_layer(ctx: Any) -> list:
    from tf_keras.src.layers.core.tf_op_layer import SlicingOpLambda, TFOpLambda

    cls = SlicingOpLambda if ctx.class_name == "SlicingOpLambda" else TFOpLambda
    layer = cls.from_config(dict(ctx.entry.raw["config"]))
    function = str(ctx.entry.raw["config"].get("function", "op"))
    return trace_layer(ctx, _WithoutTraining(layer), make_class_name(f"tf_{function.rsplit('.', 1)[-1]}"),
                       f"tf.{function} (a raw TensorFlow call in the Keras model), converted from its trace.")
