"""Keras-exact optimizers as torch.optim.Optimizer subclasses.

Every optimizer follows the Keras 3 `BaseOptimizer.apply` order exactly: gradient clipping
(`clipnorm` per tensor, `global_clipnorm`, `clipvalue`), decoupled weight decay
(`p -= p * wd * lr`), the update rule, then EMA of the weights; `iterations` counts
applied steps and the learning rate is `lr(iterations)` (a schedule, or the legacy
`lr / (1 + decay * iterations)` of tf.keras 2 optimizers).

An Embedding's gradient in Keras on TensorFlow is an IndexedSlices: one row per token
occurrence. A sparse gradient (`nn.Embedding(sparse=True)`) carries the same rows: clipping
measures them raw, and Keras 3 squares them before repeated tokens are summed
(`squared_gradient`); tf.keras sums repeated rows right after clipping
(`sum_duplicate_rows=True`).

This file imports torch and math only: render_train.py copies it into train.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


class KerasOptimizer(torch.optim.Optimizer):
    """Shared Keras step logic; subclasses implement `update(p, g, state, lr, step)`."""

    slots: tuple[str, ...] = ()  # per-parameter state tensors, in Keras variable order

    def __init__(
        self,
        params: Iterable,
        learning_rate: float | Callable[[int], float] = 0.001,
        *,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        decay: float = 0.0,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        sum_duplicate_rows: bool = False,
        **hyper: float,
    ) -> None:
        self.schedule = learning_rate if callable(learning_rate) else None
        # Keras keeps the learning rate in a float32 variable and computes with that value.
        lr = 0.0 if callable(learning_rate) else float(torch.tensor(learning_rate, dtype=torch.float32))
        defaults = dict(
            lr=lr, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
            global_clipnorm=global_clipnorm, decay=decay, use_ema=use_ema, ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency, sum_duplicate_rows=sum_duplicate_rows, iterations=0,
            **hyper,
        )
        super().__init__(params, defaults)
        self.sparse_gradient: torch.Tensor | None = None  # being applied, for squared_gradient()

    # -- what Keras' BaseOptimizer does around update_step ------------------------------

    def current_lr(self, group: dict) -> float:
        """The learning rate Keras uses for the next update (iterations before increment)."""
        step = group["iterations"]
        if self.schedule is not None:
            return float(self.schedule(step))
        lr = group["lr"]
        if group["decay"]:
            lr = lr / (1.0 + group["decay"] * step)
        return lr

    @torch.no_grad()
    def step(self, closure: Callable | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = clip_gradients([p.grad for p in params], group)
            step = group["iterations"]
            lr = torch.tensor(self.current_lr(group), dtype=torch.float32)
            if group["weight_decay"]:
                wd = torch.tensor(group["weight_decay"], dtype=torch.float32)
                for p in params:
                    p.sub_(p * wd * lr)
            self.before_updates(group, step)
            for p, g in zip(params, grads):
                state = self.state[p]
                if not state:
                    self.init_state(p, state, group)
                self.sparse_gradient = g if g.is_sparse and not group["sum_duplicate_rows"] else None
                if g.is_sparse:
                    g = rows_to_dense(g, g._values())
                self.update(p, g.to(p.dtype), state, lr, step, group)
            self.sparse_gradient = None
            if group["use_ema"]:
                self.update_ema(params, group, step)
            group["iterations"] = step + 1
        return loss

    def squared_gradient(self, g: torch.Tensor) -> torch.Tensor:
        """`g * g`; of a sparse gradient, its rows squared before repeated tokens are summed."""
        sparse = self.sparse_gradient
        return g * g if sparse is None else rows_to_dense(sparse, sparse._values() * sparse._values())

    def absolute_gradient(self, g: torch.Tensor) -> torch.Tensor:
        """`|g|`; of a sparse gradient, its rows' absolute values summed per token."""
        sparse = self.sparse_gradient
        return torch.abs(g) if sparse is None else rows_to_dense(sparse, torch.abs(sparse._values()))

    def before_updates(self, group: dict, step: int) -> None:
        """Hook for state shared by all parameters (Nadam's momentum product)."""

    def init_state(self, p: torch.Tensor, state: dict, group: dict) -> None:
        for name in self.slots:
            state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["use_ema"]:
            state["average"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def update(self, p: torch.Tensor, g: torch.Tensor, state: dict, lr: torch.Tensor, step: int, group: dict) -> None:
        raise NotImplementedError

    def update_ema(self, params: list[torch.Tensor], group: dict, step: int) -> None:
        momentum = group["ema_momentum"] if step != 0 else 0.0
        for p in params:
            average = self.state[p]["average"]
            average.copy_(average * momentum + p * (1.0 - momentum))
        frequency = group["ema_overwrite_frequency"]
        if frequency and (step + 1) % frequency == 0:
            for p in params:
                p.copy_(self.state[p]["average"])

    @torch.no_grad()
    def finalize_variable_values(self) -> None:
        """As Keras does at the end of fit() with use_ema: weights := their moving average."""
        for group in self.param_groups:
            if group["use_ema"]:
                for p in group["params"]:
                    if "average" in self.state[p]:
                        p.copy_(self.state[p]["average"])


def clip_gradients(grads: list[torch.Tensor], group: dict) -> list[torch.Tensor]:
    """Keras' _clip_gradients: clipnorm is per tensor, global_clipnorm over all of them; a
    sparse gradient is measured and clipped row by row, as TensorFlow treats IndexedSlices
    (global_clipnorm then sums its rows)."""
    if group["clipnorm"] and group["clipnorm"] > 0:
        clip = group["clipnorm"]
        out = []
        for g in grads:
            values = rows(g)
            norm = torch.sqrt(torch.sum(values * values))
            out.append(with_rows(g, values * clip / torch.maximum(norm, torch.tensor(clip, dtype=values.dtype))))
        return out
    if group["global_clipnorm"] and group["global_clipnorm"] > 0:
        clip = group["global_clipnorm"]
        norm = torch.sqrt(torch.stack([torch.sum(rows(g) * rows(g)) for g in grads]).sum())
        scale = clip * torch.minimum(1.0 / norm, torch.tensor(1.0 / clip)) + (norm - norm)
        # Keras multiplies an IndexedSlices by a tensor: the result is dense, rows summed.
        return [rows_to_dense(g, rows(g) * scale) if g.is_sparse else g * scale for g in grads]
    if group["clipvalue"] and group["clipvalue"] > 0:
        value = group["clipvalue"]
        return [with_rows(g, rows(g).clamp(-value, value)) for g in grads]
    return grads


def rows(g: torch.Tensor) -> torch.Tensor:
    """The values of a gradient: a sparse one's rows, one per token occurrence, unsummed."""
    return g._values() if g.is_sparse else g


def with_rows(g: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    if not g.is_sparse:
        return values
    return torch.sparse_coo_tensor(g._indices(), values, g.shape, is_coalesced=False)


def rows_to_dense(g: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Sum the rows `values` of sparse gradient `g` into a dense tensor of its shape."""
    dense = torch.zeros(g.shape, dtype=values.dtype, device=values.device)
    return dense.index_add_(0, g._indices()[0], values)


def f32(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float32)


class KerasSGD(KerasOptimizer):
    """keras.optimizers.SGD: `m = momentum*m - lr*g; p += m` (Nesterov: `p += momentum*m - lr*g`)."""

    def __init__(self, params: Iterable, learning_rate: float | Callable = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, **kwargs: float) -> None:
        self.slots = ("momentum",) if momentum else ()
        super().__init__(params, learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)

    def update(self, p, g, state, lr, step, group):
        if not group["momentum"]:
            p.sub_(g * lr)
            return
        mu = f32(group["momentum"])
        m = state["momentum"]
        m.copy_(m * mu - g * lr)
        if group["nesterov"]:
            p.add_(m * mu - g * lr)
        else:
            p.add_(m)


class KerasAdam(KerasOptimizer):
    """keras.optimizers.Adam (and AdamW through `weight_decay`): epsilon-hat placement."""

    def __init__(self, params: Iterable, learning_rate: float | Callable = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: float) -> None:
        self.slots = ("momentum", "velocity") + (("velocity_hat",) if amsgrad else ())
        super().__init__(params, learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad, **kwargs)

    def update(self, p, g, state, lr, step, group):
        t = f32(step + 1)
        b1, b2 = f32(group["beta_1"]), f32(group["beta_2"])
        alpha = lr * torch.sqrt(1 - b2**t) / (1 - b1**t)
        m, v = state["momentum"], state["velocity"]
        m.add_((g - m) * (1 - group["beta_1"]))
        v.add_((self.squared_gradient(g) - v) * (1 - group["beta_2"]))
        if group["amsgrad"]:
            v_hat = state["velocity_hat"]
            v_hat.copy_(torch.maximum(v_hat, v))
            v = v_hat
        p.sub_((m * alpha) / (torch.sqrt(v) + group["epsilon"]))


class KerasAdamW(KerasAdam):
    """keras.optimizers.AdamW: Adam with decoupled weight decay (default 0.004)."""

    def __init__(self, params: Iterable, learning_rate: float | Callable = 0.001, weight_decay: float = 0.004,
                 **kwargs: float) -> None:
        super().__init__(params, learning_rate, weight_decay=weight_decay, **kwargs)


class KerasRMSprop(KerasOptimizer):
    """keras.optimizers.RMSprop: epsilon inside the root; the momentum buffer includes lr."""

    def __init__(self, params: Iterable, learning_rate: float | Callable = 0.001, rho: float = 0.9,
                 momentum: float = 0.0, epsilon: float = 1e-7, centered: bool = False, **kwargs: float) -> None:
        self.slots = ("velocity",) + (("momentum",) if momentum > 0 else ()) + (("average_gradient",) if centered else ())
        super().__init__(params, learning_rate, rho=rho, momentum=momentum, epsilon=epsilon, centered=centered, **kwargs)

    def update(self, p, g, state, lr, step, group):
        rho = group["rho"]
        velocity = state["velocity"]
        velocity.copy_(rho * velocity + (1 - rho) * self.squared_gradient(g))
        if group["centered"]:
            average = state["average_gradient"]
            average.copy_(rho * average + (1 - rho) * g)
            denominator = velocity - average * average + group["epsilon"]
        else:
            denominator = velocity + group["epsilon"]
        increment = (lr * g) / torch.sqrt(denominator)
        if group["momentum"] > 0:
            momentum = state["momentum"]
            momentum.copy_(group["momentum"] * momentum + increment)
            p.sub_(momentum)
        else:
            p.sub_(increment)


class KerasLegacyRMSprop(KerasRMSprop):
    """tf.keras.optimizers.legacy.RMSprop (and RMSprop of TF <= 2.10): without momentum, epsilon
    is outside the root (with momentum it runs TensorFlow's ApplyRMSProp, as Keras 3 does)."""

    def update(self, p, g, state, lr, step, group):
        if group["momentum"] > 0:
            return super().update(p, g, state, lr, step, group)
        rho = group["rho"]
        velocity = state["velocity"]
        velocity.copy_(rho * velocity + (1 - rho) * self.squared_gradient(g))
        denominator = velocity
        if group["centered"]:
            average = state["average_gradient"]
            average.copy_(rho * average + (1 - rho) * g)
            denominator = velocity - average * average
        p.sub_((lr * g) / (torch.sqrt(denominator) + group["epsilon"]))


class KerasAdagrad(KerasOptimizer):
    """keras.optimizers.Adagrad: accumulator starts at 0.1, epsilon inside the root."""

    slots = ("accumulator",)

    def __init__(self, params: Iterable, learning_rate: float | Callable = 0.001,
                 initial_accumulator_value: float = 0.1, epsilon: float = 1e-7, **kwargs: float) -> None:
        super().__init__(params, learning_rate, initial_accumulator_value=initial_accumulator_value,
                         epsilon=epsilon, **kwargs)

    def init_state(self, p, state, group):
        super().init_state(p, state, group)
        state["accumulator"].fill_(group["initial_accumulator_value"])

    def update(self, p, g, state, lr, step, group):
        accumulator = state["accumulator"]
        accumulator.add_(self.squared_gradient(g))
        p.sub_((lr * g) / torch.sqrt(accumulator + group["epsilon"]))


class KerasLegacyAdagrad(KerasAdagrad):
    """tf.keras.optimizers.legacy.Adagrad (and Adagrad of TF <= 2.10): epsilon outside the root."""

    def update(self, p, g, state, lr, step, group):
        accumulator = state["accumulator"]
        accumulator.add_(self.squared_gradient(g))
        p.sub_((lr * g) / (torch.sqrt(accumulator) + group["epsilon"]))


class KerasAdadelta(KerasOptimizer):
    """keras.optimizers.Adadelta (lr 0.001, rho 0.95, epsilon 1e-7)."""

    slots = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, params: Iterable, learning_rate: float | Callable = 0.001, rho: float = 0.95,
                 epsilon: float = 1e-7, **kwargs: float) -> None:
        super().__init__(params, learning_rate, rho=rho, epsilon=epsilon, **kwargs)

    def update(self, p, g, state, lr, step, group):
        rho, eps = group["rho"], group["epsilon"]
        acc_grad, acc_delta = state["accumulated_grad"], state["accumulated_delta_var"]
        acc_grad.copy_(rho * acc_grad + (1 - rho) * self.squared_gradient(g))
        delta = -(torch.sqrt(acc_delta + eps) * g) / torch.sqrt(acc_grad + eps)
        delta_squared = delta * delta
        if self.sparse_gradient is not None:  # Keras 3 squares a sparse delta row by row too
            delta_squared = (acc_delta + eps) / (acc_grad + eps) * self.squared_gradient(g)
        acc_delta.copy_(rho * acc_delta + (1 - rho) * delta_squared)
        p.add_(lr * delta)


class KerasAdamax(KerasOptimizer):
    """keras.optimizers.Adamax: `u = max(b2*u, |g|)`, epsilon added to u."""

    slots = ("momentum", "norm")

    def __init__(self, params: Iterable, learning_rate: float | Callable = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, **kwargs: float) -> None:
        super().__init__(params, learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)

    def update(self, p, g, state, lr, step, group):
        b1_power = f32(group["beta_1"]) ** f32(step + 1)
        m, u = state["momentum"], state["norm"]
        m.add_((g - m) * (1 - group["beta_1"]))
        u.copy_(torch.maximum(group["beta_2"] * u, self.absolute_gradient(g)))
        p.sub_((lr * m) / ((1 - b1_power) * (u + group["epsilon"])))


class KerasNadam(KerasOptimizer):
    """keras.optimizers.Nadam, with Keras' running momentum product `u_product`."""

    slots = ("momentum", "velocity")

    def __init__(self, params: Iterable, learning_rate: float | Callable = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, **kwargs: float) -> None:
        super().__init__(params, learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, u_product=1.0, **kwargs)

    def before_updates(self, group, step):
        u_product = f32(group["u_product"])
        u_product = u_product * group["beta_1"] * (1.0 - 0.5 * f32(0.96) ** f32(step + 1))
        group["u_product"] = float(u_product)

    def update(self, p, g, state, lr, step, group):
        self.nadam_update(p, g, state, lr, step, group, f32(group["u_product"]))

    def nadam_update(self, p, g, state, lr, step, group, u_product_t):
        b1, b2 = f32(group["beta_1"]), f32(group["beta_2"])
        decay = f32(0.96)
        u_t = b1 * (1.0 - 0.5 * decay ** f32(step + 1))
        u_t_1 = b1 * (1.0 - 0.5 * decay ** f32(step + 2))
        u_product_t_1 = u_product_t * u_t_1
        b2_power = b2 ** f32(step + 1)
        m, v = state["momentum"], state["velocity"]
        m.add_((g - m) * (1 - b1))
        v.add_((self.squared_gradient(g) - v) * (1 - b2))
        m_hat = (u_t_1 * m) / (1 - u_product_t_1) + ((1 - u_t) * g) / (1 - u_product_t)
        v_hat = v / (1 - b2_power)
        p.sub_((m_hat * lr) / (torch.sqrt(v_hat) + group["epsilon"]))


class KerasNadamTF2(KerasNadam):
    """tf.keras 2.x Nadam (tf_keras/src/optimizers/nadam.py) as model.fit() runs it.

    tf.keras guards its momentum product `u_product` with a Python counter that only advances
    while TensorFlow traces the train step. So in the traced graph every variable multiplies
    `u_product` by u_t again (Keras 3: once per step), except the variable whose trace-time
    counter equals `iterations + 2`, which reuses it. `u_product_counter` is the counter of the
    first variable in the graph that runs: 1 + (number of variables) for a fresh optimizer
    (fit() traces twice, the first trace builds the optimizer), 1 after load_model() of a .h5
    (the optimizer is built before the first trace). Parameters are in Keras'
    model.trainable_variables order.
    """

    def __init__(self, params: Iterable, learning_rate: float | Callable = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, u_product_counter: int | None = None,
                 **kwargs: float) -> None:
        super().__init__(params, learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         u_product_counter=u_product_counter, **kwargs)

    def before_updates(self, group, step):
        if group["u_product_counter"] is None:
            group["u_product_counter"] = 1 + sum(p.grad is not None for p in group["params"])
        self.position = 0

    def update(self, p, g, state, lr, step, group):
        if group["u_product_counter"] + self.position != step + 2:
            u_t = f32(group["beta_1"]) * (1.0 - 0.5 * f32(0.96) ** f32(step + 1))
            group["u_product"] = float(f32(group["u_product"]) * u_t)
        self.position += 1
        self.nadam_update(p, g, state, lr, step, group, f32(group["u_product"]))


class KerasLegacyNadam(KerasOptimizer):
    """tf.keras.optimizers.legacy.Nadam (and Nadam of TF <= 2.10): the momentum schedule decays
    with `decay` (0.004, its "schedule_decay"; not a learning rate decay), and its running
    product `momentum_cache` advances once per step."""

    slots = ("momentum", "velocity")

    def __init__(self, params: Iterable, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, decay: float = 0.004, **kwargs: float) -> None:
        super().__init__(params, learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, schedule_decay=decay,
                         momentum_cache=1.0, **kwargs)

    def before_updates(self, group, step):
        b1, decay = f32(group["beta_1"]), f32(group["schedule_decay"])
        m_t = b1 * (1.0 - 0.5 * f32(0.96) ** (decay * f32(step + 1)))
        m_t_1 = b1 * (1.0 - 0.5 * f32(0.96) ** (decay * f32(step + 2)))
        schedule_new = f32(group["momentum_cache"]) * m_t
        group["momentum_cache"] = float(schedule_new)
        self.coefficients = (m_t, m_t_1, schedule_new, schedule_new * m_t_1)

    def update(self, p, g, state, lr, step, group):
        m_t, m_t_1, schedule_new, schedule_next = self.coefficients
        b1, b2 = f32(group["beta_1"]), f32(group["beta_2"])
        m, v = state["momentum"], state["velocity"]
        g_prime = g / (1.0 - schedule_new)
        m.copy_(b1 * m + (1 - b1) * g)
        v.copy_(b2 * v + (1 - b2) * self.squared_gradient(g))
        m_bar = (1.0 - m_t) * g_prime + m_t_1 * (m / (1.0 - schedule_next))
        v_prime = v / (1.0 - b2 ** f32(step + 1))
        p.sub_(lr * m_bar / (torch.sqrt(v_prime) + group["epsilon"]))


class KerasLion(KerasOptimizer):
    """keras.optimizers.Lion (lr 0.001, beta_1 0.9, beta_2 0.99)."""

    slots = ("momentum",)

    def __init__(self, params: Iterable, learning_rate: float | Callable = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.99, **kwargs: float) -> None:
        super().__init__(params, learning_rate, beta_1=beta_1, beta_2=beta_2, **kwargs)

    def update(self, p, g, state, lr, step, group):
        b1, b2 = f32(group["beta_1"]), f32(group["beta_2"])
        m = state["momentum"]
        p.sub_(lr * torch.sign(m * b1 + g * (1.0 - b1)))
        m.copy_(m * b2 + g * (1.0 - b2))


class KerasFtrl(KerasOptimizer):
    """keras.optimizers.Ftrl (follow the regularized leader)."""

    slots = ("accumulator", "linear")

    def __init__(self, params: Iterable, learning_rate: float | Callable = 0.001, learning_rate_power: float = -0.5,
                 initial_accumulator_value: float = 0.1, l1_regularization_strength: float = 0.0,
                 l2_regularization_strength: float = 0.0, l2_shrinkage_regularization_strength: float = 0.0,
                 beta: float = 0.0, **kwargs: float) -> None:
        super().__init__(
            params, learning_rate, learning_rate_power=learning_rate_power,
            initial_accumulator_value=initial_accumulator_value, l1_regularization_strength=l1_regularization_strength,
            l2_regularization_strength=l2_regularization_strength,
            l2_shrinkage_regularization_strength=l2_shrinkage_regularization_strength, beta=beta, **kwargs,
        )

    def init_state(self, p, state, group):
        super().init_state(p, state, group)
        state["accumulator"].fill_(group["initial_accumulator_value"])

    def update(self, p, g, state, lr, step, group):
        accum, linear = state["accumulator"], state["linear"]
        power = group["learning_rate_power"]
        l2 = group["l2_regularization_strength"] + group["beta"] / (2.0 * lr)
        grad_to_use = g + 2 * group["l2_shrinkage_regularization_strength"] * p
        new_accum = accum + self.squared_gradient(g)
        linear.add_(grad_to_use - ((torch.pow(new_accum, -power) - torch.pow(accum, -power)) / lr) * p)
        quadratic = torch.pow(new_accum, -power) / lr + 2 * l2
        l1 = group["l1_regularization_strength"]
        p.copy_((torch.clamp(linear, -l1, l1) - linear) / quadratic)
        accum.copy_(new_accum)


# Keras class name (Keras 3 and tf.keras 2, with or without the "Custom>" prefix) -> class
OPTIMIZERS: dict[str, type[KerasOptimizer]] = {
    "SGD": KerasSGD,
    "Adam": KerasAdam,
    "AdamW": KerasAdamW,
    "RMSprop": KerasRMSprop,
    "Adagrad": KerasAdagrad,
    "Adadelta": KerasAdadelta,
    "Adamax": KerasAdamax,
    "Nadam": KerasNadam,
    "Lion": KerasLion,
    "Ftrl": KerasFtrl,
}
