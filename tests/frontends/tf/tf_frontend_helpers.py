"""Helpers shared by the TF-frontend tests (imported by basename: tests put this dir on sys.path)."""

from __future__ import annotations

import numpy as np
import torch


def trainable_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def tf_trainable_count(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


def training_step_changes(result, batch_size: int = 3) -> None:
    """One SGD step on a squared-output loss changes every trainable parameter set."""
    from tf2torch.verify.runner import random_inputs, to_torch_layout

    module = result.module
    arrays = random_inputs(result.graph, batch_size, seed=1)
    before = {k: p.detach().clone() for k, p in module.named_parameters() if p.requires_grad}
    assert before, "no trainable parameters"
    module.train()
    opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.1)
    out = module(*[to_torch_layout(a, v) for a, v in zip(arrays, result.graph.inputs)])
    outs = out if isinstance(out, (tuple, list)) else [out]
    loss = sum((o.float() ** 2).mean() for o in outs if o.is_floating_point())
    loss.backward()
    opt.step()
    module.eval()
    changed = [k for k, p in module.named_parameters() if p.requires_grad and not torch.equal(p, before[k])]
    assert changed, "a training step changed no parameter"


def assert_matches(result, batch_sizes=(3,), inputs=None, tolerance: float = 1e-5) -> None:
    for batch in batch_sizes:
        report = result.verify(inputs, batch_size=batch, tolerance=tolerance)
        assert report.outputs, "verification compared nothing"
        assert report.ok, report.table()


def forward_source(source: str) -> str:
    start = source.index("    def forward(self")
    return source[start:source.index("\ndef load_model")]


def residual_mlp_net(blocks: int = 4):
    """A subclassed Keras model holding a list of custom blocks (`self.blocks = [ResidualMlp(12)
    ...]`), built on a (2, 9) input, weights drawn from a fixed generator. Keras' layer names
    count from zero (clear_session), whatever ran before in this process."""
    import keras

    class ResidualMlp(keras.layers.Layer):
        def __init__(self, dim: int, **kwargs) -> None:
            super().__init__(**kwargs)
            self.d1 = keras.layers.Dense(dim * 2, activation="relu")
            self.d2 = keras.layers.Dense(dim)
            self.norm = keras.layers.LayerNormalization(epsilon=1e-5)

        def call(self, x):
            return self.norm(x + self.d2(self.d1(x)))

    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.stem = keras.layers.Dense(12)
            self.blocks = [ResidualMlp(12) for _ in range(blocks)]
            self.head = keras.layers.Dense(3)

        def call(self, x):
            x = self.stem(x)
            for block in self.blocks:
                x = block(x)
            return self.head(x)

    keras.backend.clear_session()
    model = Net()
    model(np.zeros((2, 9), np.float32))
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.3, weight.shape).astype(np.float32))
    return model
