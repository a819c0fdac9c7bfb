"""specialize(): a runtime loss / metric function with its compiled arguments fixed computes
what the generic function computes with those arguments, without the branches they rule out."""

from __future__ import annotations

import pytest
import torch

from tf2torch.training import losses, metrics
from tf2torch.training.render_train import runtime_definition
from tf2torch.training.specialize import specialize

CASES = [
    ("sparse_categorical_crossentropy", {}, ["from_logits", "ignore_class", "log_softmax"]),
    ("sparse_categorical_crossentropy", {"from_logits": True}, ["from_logits", "ignore_class", "clamp"]),
    ("categorical_crossentropy", {"from_logits": True, "label_smoothing": 0.1}, ["from_logits", "clamp"]),
    ("binary_crossentropy", {}, ["label_smoothing", "from_logits", "with_logits"]),
    ("binary_focal_crossentropy", {"apply_class_balancing": True, "gamma": 3.0}, ["from_logits", "sigmoid"]),
    ("huber", {"delta": 0.5}, []),
    ("sparse_top_k_categorical_accuracy", {"k": 2}, []),
    ("binary_accuracy", {"threshold": 0.3}, []),
]


@pytest.mark.parametrize(("fn", "kwargs", "gone"), CASES)
def test_specialized_function_equals_the_generic_one(fn, kwargs, gone):
    text = specialize(runtime_definition(fn), kwargs)
    for word in gone:
        assert word not in text, word
    namespace = {**vars(losses), **vars(metrics)}
    exec(compile(text, "<specialized>", "exec"), namespace)  # noqa: S102 (our own runtime's code)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=generator)
    probabilities = torch.softmax(logits, dim=-1)
    y_pred = logits if kwargs.get("from_logits") else probabilities
    if fn.startswith("sparse"):
        y_true = torch.randint(0, 4, (5,), generator=generator)
    elif fn in ("binary_crossentropy", "binary_focal_crossentropy", "binary_accuracy"):
        y_true = torch.randint(0, 2, (5, 4), generator=generator).float()
    else:
        y_true = torch.eye(4)[torch.randint(0, 4, (5,), generator=generator)]
    generic = getattr(losses, fn, None) or getattr(metrics, fn)
    torch.testing.assert_close(namespace[fn](y_true, y_pred), generic(y_true, y_pred, **kwargs), rtol=0, atol=0)


def test_a_fixed_argument_still_used_becomes_the_default():
    text = specialize(runtime_definition("huber"), {"delta": 0.5})
    assert text.startswith("def huber(y_true, y_pred, delta=0.5):")
