"""Numeric comparison of outputs and the verification report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_TOLERANCE = 1e-5  # max abs error / max |reference|, in fp32


@dataclass
class OutputCheck:
    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float  # max abs error divided by the reference's largest magnitude
    tolerance: float
    # Computed from a random draw (keras.random): torch's generator is not TensorFlow's, so
    # only the shape and finiteness can be compared.
    random: bool = False
    # An absolute bound replacing the relative one (e.g. one quantization step of the output).
    abs_tolerance: float | None = None
    # A dequantized model against integer arithmetic: the error (the file's quantization error)
    # is reported, not judged at float tolerance.
    dequantized: bool = False

    @property
    def status(self) -> str:
        if not np.isfinite(self.max_abs_error):
            return "FAILED"
        if self.random:
            return "RANDOM"
        if self.dequantized:
            return "DEQUANTIZED"
        if self.abs_tolerance is not None:
            return "OK" if self.max_abs_error <= self.abs_tolerance else "FAILED"
        return "OK" if self.max_rel_error <= self.tolerance else "FAILED"


@dataclass
class VerificationReport:
    source: str
    mode: str  # "eval" or "train"
    batch_size: int
    outputs: list[OutputCheck] = field(default_factory=list)
    reference: str = "Keras"  # what produced the expected outputs (e.g. "onnxruntime")
    silenced: list[str] = field(default_factory=list)  # train mode: noise layers run with rate 0
    traced_for_inference: list[str] = field(default_factory=list)  # train mode: training-only code not converted
    note: str = ""  # how to read the numbers (e.g. a dequantized quantized model)

    @property
    def ok(self) -> bool:
        return all(o.status in ("OK", "RANDOM", "DEQUANTIZED") for o in self.outputs)

    def table(self) -> str:
        header = f"{'output':<24} {'shape':<20} {'max abs err':>12} {'rel to max':>12}  status"
        lines = [f"Verification of {self.source} ({self.mode} mode, batch {self.batch_size}) against {self.reference}:", header]
        for o in self.outputs:
            lines.append(
                f"{o.name:<24} {list(o.shape)!s:<20} {o.max_abs_error:>12.3e} {o.max_rel_error:>12.3e}  {o.status}"
            )
        if any(o.random for o in self.outputs):
            lines.append("RANDOM: computed from a random draw (torch's generator, not TensorFlow's): shape checked only")
        if self.silenced:
            lines.append(f"Dropout / noise off on both sides (random draws cannot match): {', '.join(self.silenced)}")
        if self.traced_for_inference:
            lines.append("Traced in inference mode (what their call() does only in training is not in train()): "
                         + ", ".join(self.traced_for_inference))
        if self.note:
            lines.append(self.note)
        lines.append("Result: " + self._result())
        return "\n".join(lines)

    def _result(self) -> str:
        if not self.ok:
            bounds = ", ".join(f"{o.abs_tolerance:g} absolute" if o.abs_tolerance is not None else
                               f"{o.tolerance:g} relative to max |output|" for o in self.outputs)
            return f"FAILED (tolerance {bounds})"
        if any(o.status == "DEQUANTIZED" for o in self.outputs):
            return f"DEQUANTIZED, max abs error {max(o.max_abs_error for o in self.outputs):.3e} (not exact)"
        return "OK"

    def to_dict(self) -> dict:
        return {
            "source": self.source, "mode": self.mode, "batch_size": self.batch_size, "ok": self.ok,
            "noise_off": self.silenced, "traced_for_inference": self.traced_for_inference,
            "outputs": [
                {"name": o.name, "shape": list(o.shape), "max_abs_error": o.max_abs_error,
                 "max_rel_error": o.max_rel_error, "tolerance": o.tolerance, "status": o.status,
                 **({"abs_tolerance": o.abs_tolerance} if o.abs_tolerance is not None else {})}
                for o in self.outputs
            ],
            **({"note": self.note} if self.note else {}),
        }


def compare_output(
    name: str, reference: np.ndarray, result: np.ndarray, tolerance: float = DEFAULT_TOLERANCE, random: bool = False
) -> OutputCheck:
    reference = np.asarray(reference, dtype=np.float64)
    result = np.asarray(result, dtype=np.float64)
    if reference.shape != result.shape:
        return OutputCheck(name, tuple(reference.shape), float("inf"), float("inf"), tolerance)
    if random:
        finite = bool(np.isfinite(result).all())
        return OutputCheck(name, tuple(reference.shape), 0.0 if finite else float("inf"), 0.0, tolerance, random=True)
    error = float(np.max(np.abs(reference - result))) if reference.size else 0.0
    if not np.isfinite(result).all() and np.array_equal(np.isnan(result), np.isnan(reference)):
        error = float(np.nanmax(np.abs(reference - result)))
    scale = max(float(np.max(np.abs(reference))) if reference.size else 0.0, 1e-12)
    return OutputCheck(name, tuple(reference.shape), error, error / scale, tolerance)
