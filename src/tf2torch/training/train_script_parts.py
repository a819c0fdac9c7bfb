"""The fixed text of train_script.py's train.py, and its two Keras-exact optimizers.

Placeholders are `@name@` (the text is Python full of braces); the optimizers are written
with only the branches a compile config uses.
"""

from __future__ import annotations

IMPORTS = [
    "from __future__ import annotations",
    "",
    "import math",
    "import sys",
    "import time",
    "from collections.abc import Callable, Iterable",
    "from pathlib import Path",
    "",
    "import numpy as np",
    "import torch",
    "import torch.distributed as dist",
    "import torch.nn.functional as F",
    "from safetensors.torch import load_file",
    "from torch import nn",
    "from torch.utils.data import DataLoader",
]

# What train.py may take from train_utils.py (written next to it, the same for every model).
TRAIN_UTILS = ["Averages", "data_loaders", "finish_distributed", "gather_embedding_gradients", "init_distributed",
               "parse_args", "progress", "restore", "save_epoch", "save_final", "unpack"]


def local_imports(class_name: str, utils: list[str]) -> str:
    """model.py and train_utils.py, found next to train.py wherever it is started from."""
    names = "".join(f"    {name},\n" for name in utils)
    return ("sys.path.insert(0, str(Path(__file__).resolve().parent))  # model.py, train_utils.py\n"
            f"from model import {class_name}\n"
            f"from train_utils import (\n{names})")


def fill(template: str, **values: str) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    return template


def defaults_lines(entries: list[str]) -> list[str]:
    """`super().__init__(params, {...})` with the optimizer's hyper-parameters and step count."""
    entries = [*entries, '"iterations": 0']
    flat = f"        super().__init__(params, {{{', '.join(entries)}}})"
    if len(flat) <= 120:
        return [flat]
    return ["        defaults = {", *[f"            {e}," for e in entries], "        }",
            "        super().__init__(params, defaults)"]


def signature(args: list[str]) -> list[str]:
    """`def __init__(self, params, ...)`, one argument a line when it is long."""
    flat = f"    def __init__(self, params, {', '.join(args)}) -> None:"
    if len(flat) <= 120:
        return [flat]
    return ["    def __init__(", "        self,", "        params,", *[f"        {a}," for a in args], "    ) -> None:"]


def keras_adam_source(ctor: str, weight_decay: bool, amsgrad: bool, sparse: bool, schedule: bool) -> str:
    """keras.optimizers.Adam / AdamW with only the options in use."""
    name = ctor.removeprefix("Keras")
    wd_default = "0.004" if ctor == "KerasAdamW" else "None"
    lr_arg = "learning_rate: Callable[[int], float]" if schedule else "learning_rate=0.001"
    args = [lr_arg, "beta_1=0.9", "beta_2=0.999", "epsilon=1e-7"]
    hyper = ['"beta_1": beta_1', '"beta_2": beta_2', '"epsilon": epsilon']
    if weight_decay:
        args.append(f"weight_decay={wd_default}")
        hyper.append('"weight_decay": weight_decay')
    if amsgrad:
        args.append("amsgrad=False")
        hyper.append('"amsgrad": amsgrad')
    init = ["        self.schedule = learning_rate  # called with the number of steps taken, as Keras does",
            *defaults_lines(hyper)] if schedule else defaults_lines(['"lr": learning_rate', *hyper])
    lr = "self.schedule(step)" if schedule else 'group["lr"]'
    slots = '"momentum", "velocity"' + (', "velocity_hat"' if amsgrad else "")
    grads = ["                g, g_squared = p.grad, p.grad * p.grad"]
    if sparse:
        grads = [
            "                if p.grad.is_sparse:  # an Embedding: each token occurrence's row squared, then summed",
            "                    rows, index = p.grad._values(), p.grad._indices()[0]",
            "                    g = torch.zeros_like(p).index_add_(0, index, rows)",
            "                    g_squared = torch.zeros_like(p).index_add_(0, index, rows * rows)",
            "                else:",
            "                    g, g_squared = p.grad, p.grad * p.grad",
        ]
    update = [
        '                m.add_((g - m) * (1 - group["beta_1"]))',
        '                v.add_((g_squared - v) * (1 - group["beta_2"]))',
    ]
    if amsgrad:
        update += ['                v = state["velocity_hat"].copy_(torch.maximum(state["velocity_hat"], v))']
    decay = ['                p.sub_(p * torch.tensor(group["weight_decay"]) * lr)'] if weight_decay else []
    if weight_decay and ctor == "KerasAdam":
        decay = ['                if group["weight_decay"]:', "    " + decay[0]]
    wd_doc = "\n    Weight decay is decoupled: `p -= p * weight_decay * lr` before the update." if weight_decay else ""
    return "\n".join([
        f"class Keras{name}(torch.optim.Optimizer):",
        f'    """keras.optimizers.{name}: torch.optim.{name} adds epsilon to the bias-corrected root of v;',
        "    Keras folds the bias correction into the step size and adds epsilon to sqrt(v), in",
        f'    float32.{wd_doc}"""',
        "",
        *signature(args),
        *init,
        "",
        "    @torch.no_grad()",
        "    def step(self) -> None:",
        "        for group in self.param_groups:",
        '            step = group["iterations"]',
        f"            lr = torch.tensor({lr}, dtype=torch.float32)",
        "            t = torch.tensor(step + 1.0)",
        '            beta_1, beta_2 = torch.tensor(group["beta_1"]), torch.tensor(group["beta_2"])',
        "            alpha = lr * torch.sqrt(1 - beta_2**t) / (1 - beta_1**t)",
        '            for p in group["params"]:',
        "                if p.grad is None:",
        "                    continue",
        "                state = self.state[p]",
        "                if not state:",
        f"                    state.update({{slot: torch.zeros_like(p) for slot in ({slots})}})",
        '                m, v = state["momentum"], state["velocity"]',
        *grads,
        *decay,
        *update,
        '                p.sub_((m * alpha) / (torch.sqrt(v) + group["epsilon"]))',
        '            group["iterations"] = step + 1',
    ])


def keras_sgd_source(momentum: bool, nesterov: bool, weight_decay: bool, sparse: bool, schedule: bool) -> str:
    """keras.optimizers.SGD with only the options in use (torch.optim.SGD keeps the learning
    rate out of its momentum buffer: the same steps only at a constant learning rate)."""
    lr_arg = "learning_rate: Callable[[int], float]" if schedule else "learning_rate=0.01"
    args, hyper = [lr_arg], []
    if momentum:
        args += ["momentum=0.0", "nesterov=False"]
        hyper += ['"momentum": momentum', '"nesterov": nesterov']
    if weight_decay:
        args.append("weight_decay=None")
        hyper.append('"weight_decay": weight_decay')
    init = (["        self.schedule = learning_rate  # called with the number of steps taken, as Keras does"]
            if schedule else []) + defaults_lines([*([] if schedule else ['"lr": learning_rate']), *hyper])
    grad = ["                g = p.grad"]
    if sparse:
        grad = ["                g = p.grad.to_dense() if p.grad.is_sparse else p.grad  # an Embedding's token rows"]
    body = ["                p.sub_(g * lr)"]
    if momentum:
        step_expr = 'm * mu - g * lr' if nesterov else "m"
        body = [
            '                mu = torch.tensor(group["momentum"])',
            '                m = self.state[p].setdefault("momentum", torch.zeros_like(p))',
            "                m.copy_(m * mu - g * lr)",
            f"                p.add_({step_expr})",
        ]
        if nesterov:
            body = body[:-1] + ['                p.add_(m * mu - g * lr if group["nesterov"] else m)']
    decay = ['                p.sub_(p * torch.tensor(group["weight_decay"]) * lr)'] if weight_decay else []
    lr = "self.schedule(step)" if schedule else 'group["lr"]'
    return "\n".join([
        "class KerasSGD(torch.optim.Optimizer):",
        '    """keras.optimizers.SGD: `m = momentum * m - lr * g; p += m`. torch.optim.SGD keeps lr out of',
        '    its momentum buffer, which takes the same steps only at a constant learning rate."""',
        "",
        *signature(args),
        *init,
        "",
        "    @torch.no_grad()",
        "    def step(self) -> None:",
        "        for group in self.param_groups:",
        '            step = group["iterations"]',
        f"            lr = torch.tensor({lr}, dtype=torch.float32)",
        '            for p in group["params"]:',
        "                if p.grad is None:",
        "                    continue",
        *grad,
        *decay,
        *body,
        '            group["iterations"] = step + 1',
    ])


MAIN = '''INPUT_PERMS = @input_perms@  # Keras layout -> torch layout of each model input (None: the same)
NAMES = @names@


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    model.eval()
    averages = Averages(NAMES)
    for batch in loader:
        inputs, y, sample_weight = unpack(batch, device)
        y_pred = @eval_output@
        record(averages, compute_loss(y_pred, y, sample_weight)@penalty@, y_pred, y)
    return averages.result(prefix="val_")


def main() -> None:
    args = parse_args(__doc__)
    rank, world, device = init_distributed()
    log = rank == 0 and not args.quiet

    model = @class_name@()
    model.load_state_dict(load_file(args.weights), strict=True)
    model.to(device)
@sparse_setup@    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = @optimizer@
    generator = torch.Generator().manual_seed(args.seed)  # the shuffle order; checkpointed
    start_epoch, history = restore(args, model, optimizer, generator)
    forward = model
    if dist.is_initialized():  # BatchNorm: each process's own batch statistics, as MirroredStrategy
@ddp_ignore@        forward = nn.parallel.DistributedDataParallel(model)
    sampler, train_loader, val_loader = data_loaders(args, INPUT_PERMS, generator, rank, world)

    checkpoints = Path(args.checkpoint_dir)
    for epoch in range(start_epoch, args.epochs):
        if log:
            print(f"Epoch {epoch + 1}/{args.epochs}")
        started, averages = time.perf_counter(), Averages(NAMES)
        for step, batch in enumerate(train_loader):
            inputs, y, sample_weight = unpack(batch, device)
            share = sampler.share(step)
            model.train(share > 0)  # a stand-in sample leaves BatchNorm's statistics alone
            optimizer.zero_grad(set_to_none=True)
@step@
            if share > 0:
                record(averages, loss.detach(), y_pred.detach(), y)
            if log:
                progress(step + 1, len(sampler), averages.result(local=True))
        logs = averages.result()
        if val_loader is not None:
            logs.update(evaluate(model, val_loader, device))
        if log:
            progress(len(sampler), len(sampler), logs, done=True)
            print(f"{len(sampler)}/{len(sampler)} - {time.perf_counter() - started:.0f}s")
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if rank == 0:
            save_epoch(checkpoints, model, optimizer, epoch + 1, generator, history)
@finalize_ema@    if rank == 0:
        save_final(checkpoints, model)
    finish_distributed()


if __name__ == "__main__":
    main()
'''
