"""End-to-end demo: convert the bundled Keras CNN, verify it, and train the result one step.

    make demo      (or: python examples/demo.py)

1. Converts examples/small_cnn.keras into out/demo/ (model.py + model.safetensors), verifying
   against Keras in eval and in train mode.
2. Imports out/demo/model.py as a plain file: it needs torch and safetensors, not tf2torch.
3. Loads the weights with the generated load_model() and runs one SGD step on random data.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import torch

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "examples" / "small_cnn.keras"
OUTDIR = REPO / "out" / "demo"


def convert_and_verify() -> None:
    import tf2torch

    result = tf2torch.convert(SOURCE)
    eval_report = result.verify(batch_size=4)
    train_report = result.verify(batch_size=4, training=True)
    result.save(OUTDIR, report=eval_report)
    print(f"Converted {SOURCE.relative_to(REPO)} -> {OUTDIR.relative_to(REPO)}/model.py, model.safetensors\n")
    print(eval_report.table() + "\n")
    print(train_report.table() + "\n")
    if not (eval_report.ok and train_report.ok):
        sys.exit("verification FAILED")


def import_generated(path: Path):
    """Import model.py as a standalone file, the way a user of the output would."""
    spec = importlib.util.spec_from_file_location("demo_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    imports = [line for line in path.read_text().splitlines() if line.startswith(("import ", "from "))]
    assert not any("tf2torch" in line for line in imports), "model.py must not depend on tf2torch"
    return module


def train_one_step(generated) -> None:
    torch.manual_seed(0)
    model = generated.load_model(OUTDIR / "model.safetensors")
    model.train()
    images = torch.randn(8, 3, 33, 35)  # NCHW: the Keras input was NHWC (8, 33, 35, 3)
    labels = torch.randint(0, 10, (8,))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    # The Keras model ends in softmax, so the loss takes the log of its probabilities
    # (what sparse_categorical_crossentropy does in Keras).
    def loss_fn() -> torch.Tensor:
        return torch.nn.functional.nll_loss(torch.log(model(images).clamp_min(1e-7)), labels)

    loss = loss_fn()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss_fn()
    changed = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
    print(f"One SGD step on a random batch of 8 (lr 0.01): loss {loss.item():.4f} -> {after.item():.4f}")
    print(f"{len(changed)} of {len(before)} parameter tensors changed: {', '.join(changed)}")
    if len(changed) != len(before):
        sys.exit("some parameters did not change")


def main() -> None:
    convert_and_verify()
    generated = import_generated(OUTDIR / "model.py")
    train_one_step(generated)


if __name__ == "__main__":
    main()
