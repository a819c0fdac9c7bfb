"""Random augmentation layers (RandomFlip, RandomRotation, RandomZoom, ..., MixUp, RandAugment).

Keras applies them only in training: in inference each returns its input, which the converted
model does exactly. In train() mode RandomFlip flips with torch's random numbers; every other
augmentation stays an identity, stated in the generated code and the conversion notes
(torch cannot replay TensorFlow's random draws, so training-mode outputs never match anyway).
"""

from __future__ import annotations

from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.importers.preprocessing import import_resizing_to
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import TensorSpec, Value

# Identity in inference in both Keras 3 and tf_keras (checked against Keras in the tests).
EVAL_IDENTITY_AUGMENTATIONS = (
    "AugMix", "CutMix", "MixUp", "RandAugment", "RandomBrightness", "RandomColorDegeneration",
    "RandomColorJitter", "RandomContrast", "RandomElasticTransform", "RandomErasing",
    "RandomGaussianBlur", "RandomGrayscale", "RandomHeight", "RandomHue", "RandomInvert",
    "RandomPerspective", "RandomPosterization", "RandomRotation", "RandomSaturation",
    "RandomSharpness", "RandomShear", "RandomTranslation", "RandomWidth", "RandomZoom", "Solarization",
)


def _float_output(ctx: LayerContext) -> TensorSpec:
    x = ctx.inputs[0]
    return TensorSpec(x.spec.shape, "float32")  # Keras casts to the compute dtype


@register_importer(*EVAL_IDENTITY_AUGMENTATIONS)
def import_eval_identity_augmentation(ctx: LayerContext) -> list[Value]:
    ctx.graph.notes.append(
        f"{ctx.class_name} '{ctx.name}': an identity; Keras applies it only in training, "
        "and the converted model does not reproduce it in train() mode"
    )
    return ctx.add("train_augmentation", [ctx.inputs[0]], [_float_output(ctx)], {"kind": ctx.class_name}).outputs


@register_importer("RandomFlip")
def import_random_flip(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    if x.rank != 4:
        raise ctx.unsupported(f"RandomFlip on a rank-{x.rank} input (a batch of images, rank 4, is expected)")
    mode = ctx.config.get("mode", "horizontal_and_vertical")
    if mode not in ("horizontal", "vertical", "horizontal_and_vertical"):
        raise ctx.unsupported(f"mode={mode!r}")
    first = (ctx.config.get("data_format") or "channels_last") == "channels_first"
    attrs = {"height_axis": 2 if first else 1, "width_axis": 3 if first else 2,
             "horizontal": "horizontal" in mode, "vertical": "vertical" in mode}
    return ctx.add("random_flip", [x], [_float_output(ctx)], attrs).outputs


@register_importer("RandomCrop")
def import_random_crop(ctx: LayerContext) -> list[Value]:
    """Inference: tf_keras crops the centered window of the target's aspect ratio and resizes
    it bilinearly (smart_resize); Keras 3 returns the input unchanged."""
    x = ctx.inputs[0]
    size = (int(ctx.config["height"]), int(ctx.config["width"]))
    if ctx.keras_major == 2:
        return import_resizing_to(ctx, size, "bilinear", crop_to_aspect_ratio=True)
    if x.rank != 4 or tuple(x.spec.shape[1:3]) != size:
        raise ctx.unsupported(
            "Keras 3 RandomCrop on an image of another size than its crop (in inference Keras 3 returns "
            "the uncropped image, whose shape contradicts the layer's declared output)"
        )
    return import_eval_identity_augmentation(ctx)
