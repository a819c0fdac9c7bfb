"""What tf2torch does with each public built-in layer class of Keras 3 and tf_keras that has
no importer of its own: converted as part of another layer, or refused, and why.

scripts/gen_supported_table.py lists every public class of the installed `keras.layers` and
`tf_keras.layers` with its status; tests/test_readme.py fails when a class is neither
converted (LAYER_IMPORTERS), nor in CONVERTED_INSIDE, nor refused here with a reason. A
config's class name is the class's own name, so aliases (`Convolution2D`) share the status
of the class they name (`Conv2D`).
"""

from __future__ import annotations

from tf2torch.frontends.keras.unsupported import BUILTIN_MODULES

# Classes that only occur inside another layer's config; that layer converts them.
CONVERTED_INSIDE: dict[str, str] = {
    "GRUCell": "RNN",
    "LSTMCell": "RNN",
    "SimpleRNNCell": "RNN",
    "StackedRNNCells": "RNN",
}

# A model input, not a computation.
STRUCTURAL = frozenset({"InputLayer"})

_BASE_CLASS = "it is a base class: a model holds subclasses of it, which are custom layers (register a converter)"
_FOREIGN = "it wraps a model of another framework, whose code is not in the file"
_HISTOGRAM = "it computes per-image histograms, for which no converter is written yet"
_NOT_WRITTEN = "no converter is written for it yet"
_FINGERPRINT = (
    "TensorFlow hashes the decimal string of each integer with FarmHash's Fingerprint64 (SipHash with a "
    "salt), which tf2torch does not reproduce bit for bit yet: hash in your data pipeline"
)

# Refused built-in classes: class name -> the reason, completing "not supported yet, because ...".
REFUSED_BUILTINS: dict[str, str] = {
    "AbstractRNNCell": _BASE_CLASS,
    "ContrastLimitedAdaptiveHistogramEqualization": _HISTOGRAM,
    "DenseFeatures": "it reads tf.feature_column definitions (dicts of named, often string, features)",
    "Equalization": _HISTOGRAM,
    "FlaxLayer": _FOREIGN,
    "HashedCrossing": _FINGERPRINT,
    "Hashing": _FINGERPRINT,
    "JaxLayer": _FOREIGN,
    "Layer": _BASE_CLASS,
    "MaxNumBoundingBoxes": "it pads bounding-box annotations, which are not model tensors",
    "StringLookup": (
        "torch has no string tensors: run the lookup in your data pipeline and convert the model from the "
        "integer ids on (an IntegerLookup or no lookup)"
    ),
    "TFSMLayer": "it wraps a TensorFlow SavedModel: convert that SavedModel directory instead",
    "TextVectorization": (
        "torch has no string tensors: tokenize in your data pipeline and convert the model from the token ids on"
    ),
    "TorchModuleWrapper": "it wraps a torch module, stored pickled, which tf2torch never loads",
    "Wrapper": _BASE_CLASS,
}



def builtin_refusal(class_name: str, module: str | None = None) -> str | None:
    """The error reason for a built-in layer tf2torch refuses, or None if the class is not
    known as one (a custom layer, or a converted class)."""
    if class_name in REFUSED_BUILTINS:
        return f"a built-in Keras layer, not supported yet, because {REFUSED_BUILTINS[class_name]}"
    if module is not None and module.startswith(BUILTIN_MODULES):
        return (
            "a built-in Keras layer, not supported yet, because this tf2torch version does not know it "
            f"({module}: newer than the Keras versions tf2torch was checked against)"
        )
    return None
