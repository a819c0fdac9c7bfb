"""Keras learning-rate schedules as callables `step -> lr`, evaluated in float32 as Keras does.

The optimizer calls the schedule with `iterations` (0 for the first update), once per batch.
This file imports torch and math only: render_train.py copies it into train.py.
"""

from __future__ import annotations

import math

import torch


def _t(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float32)


class ExponentialDecay:
    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False) -> None:
        self.lr0, self.decay_steps, self.rate, self.staircase = initial_learning_rate, decay_steps, decay_rate, staircase

    def __call__(self, step: int) -> float:
        p = _t(step) / _t(self.decay_steps)
        if self.staircase:
            p = torch.floor(p)
        return float(_t(self.lr0) * torch.pow(_t(self.rate), p))


class PiecewiseConstantDecay:
    def __init__(self, boundaries: list[float], values: list[float]) -> None:
        self.boundaries, self.values = list(boundaries), list(values)

    def __call__(self, step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return float(_t(value))
        return float(_t(self.values[-1]))


class PolynomialDecay:
    def __init__(self, initial_learning_rate: float, decay_steps: int, end_learning_rate: float = 0.0001,
                 power: float = 1.0, cycle: bool = False) -> None:
        self.lr0, self.decay_steps, self.end, self.power, self.cycle = (
            initial_learning_rate, decay_steps, end_learning_rate, power, cycle)

    def __call__(self, step: int) -> float:
        s, d = _t(step), _t(self.decay_steps)
        if self.cycle:
            d = d * (1.0 if step == 0 else math.ceil(step / self.decay_steps))
        else:
            s = torch.minimum(s, d)
        p = s / d
        lr0, end = _t(self.lr0), _t(self.end)
        return float((lr0 - end) * torch.pow(1 - p, _t(self.power)) + end)


class InverseTimeDecay:
    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False) -> None:
        self.lr0, self.decay_steps, self.rate, self.staircase = initial_learning_rate, decay_steps, decay_rate, staircase

    def __call__(self, step: int) -> float:
        p = _t(step) / _t(self.decay_steps)
        if self.staircase:
            p = torch.floor(p)
        return float(_t(self.lr0) / (1 + _t(self.rate) * p))


class CosineDecay:
    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 warmup_target: float | None = None, warmup_steps: int = 0) -> None:
        self.lr0, self.decay_steps, self.alpha = initial_learning_rate, decay_steps, alpha
        self.warmup_target, self.warmup_steps = warmup_target, warmup_steps

    def _decay(self, step: torch.Tensor, decay_from: torch.Tensor) -> torch.Tensor:
        fraction = step / _t(self.decay_steps)
        cosine = 0.5 * (1.0 + torch.cos(_t(math.pi) * fraction))
        return decay_from * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: int) -> float:
        s, d = _t(step), _t(self.decay_steps)
        if self.warmup_target is None:
            return float(self._decay(torch.minimum(s, d), _t(self.lr0)))
        target, warmup = _t(self.warmup_target), _t(self.warmup_steps)
        s = torch.minimum(s, d + warmup)
        if s < warmup:
            return float((target - _t(self.lr0)) * (s / warmup) + _t(self.lr0))
        return float(self._decay(s - warmup, target))


class CosineDecayRestarts:
    def __init__(self, initial_learning_rate: float, first_decay_steps: int, t_mul: float = 2.0,
                 m_mul: float = 1.0, alpha: float = 0.0) -> None:
        self.lr0, self.first, self.t_mul, self.m_mul, self.alpha = (
            initial_learning_rate, first_decay_steps, t_mul, m_mul, alpha)

    def __call__(self, step: int) -> float:
        t_mul, m_mul, alpha = _t(self.t_mul), _t(self.m_mul), _t(self.alpha)
        fraction = _t(step) / _t(self.first)
        if self.t_mul == 1.0:
            i_restart = torch.floor(fraction)
            fraction = fraction - i_restart
        else:
            i_restart = torch.floor(torch.log(1.0 - fraction * (1.0 - t_mul)) / torch.log(t_mul))
            sum_r = (1.0 - torch.pow(t_mul, i_restart)) / (1.0 - t_mul)
            fraction = (fraction - sum_r) / torch.pow(t_mul, i_restart)
        cosine = 0.5 * torch.pow(m_mul, i_restart) * (1.0 + torch.cos(_t(math.pi) * fraction))
        return float(_t(self.lr0) * ((1 - alpha) * cosine + alpha))


SCHEDULES = {
    "ExponentialDecay": ExponentialDecay,
    "PiecewiseConstantDecay": PiecewiseConstantDecay,
    "PolynomialDecay": PolynomialDecay,
    "InverseTimeDecay": InverseTimeDecay,
    "CosineDecay": CosineDecay,
    "CosineDecayRestarts": CosineDecayRestarts,
}
