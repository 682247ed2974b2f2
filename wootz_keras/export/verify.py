"""Parity checks against Keras and CPU latency measurement.

Every exported file is checked in its own runtime before it is kept:

* float32 (SavedModel, ONNX, fp32 TFLite): max abs diff to Keras
  <= `FP32_ATOL * max(1, max |keras output|)`: 1e-4 for softmax outputs,
  1e-4 relative for logits larger than 1 (float32 round-off grows with them).
* float16 TFLite (fp16 weights, fp32 compute on CPU): max abs diff
  <= `FP16_RTOL * max(1, max |keras output|)`, i.e. 1e-2 for softmax outputs.
* int8 TFLite (full-integer): top-1 agreement with Keras >= `INT8_MIN_TOP1`
  on the real verification images.
"""

import time

import numpy as np

FP32_ATOL = 1e-4
FP16_RTOL = 1e-2
INT8_MIN_TOP1 = 0.98


class VerificationError(RuntimeError):
    """An exported model does not reproduce the Keras model closely enough."""


def max_abs_diff(got, ref):
    """Largest absolute difference between two output arrays.

    Example:
        >>> max_abs_diff(np.array([1.0, 2.0]), np.array([1.0, 2.5]))
        0.5
    """
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        raise VerificationError(f"output shape {got.shape} differs from Keras's {ref.shape}")
    return float(np.max(np.abs(got - ref))) if got.size else 0.0


def top1_agreement(got, ref):
    """Fraction of rows whose argmax matches.

    Example:
        >>> top1_agreement(np.eye(3), np.eye(3)[[0, 1, 0]])
        0.6666666666666666
    """
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape:
        raise VerificationError(f"output shape {got.shape} differs from Keras's {ref.shape}")
    got, ref = got.reshape(len(got), -1), ref.reshape(len(ref), -1)
    return float(np.mean(np.argmax(got, -1) == np.argmax(ref, -1)))


def check_parity(got, ref, precision="float32"):
    """Compare runtime outputs with Keras's; return the manifest fields or raise.

    `precision` is "float32", "float16" or "int8" (see the module docstring for
    the tolerances).

    Example:
        >>> ref = np.array([[0.1, 0.9]], np.float32)
        >>> check_parity(ref + 1e-6, ref)["max_abs_diff"] < 1e-4
        True
        >>> round(check_parity(100 * ref + 1e-3, 100 * ref)["tolerance"], 6)  # 1e-4 x 90
        0.009
    """
    if not np.all(np.isfinite(got)):
        raise VerificationError("runtime produced non-finite outputs")
    if precision == "int8":
        agreement = top1_agreement(got, ref)
        if agreement < INT8_MIN_TOP1:
            raise VerificationError(
                f"int8 top-1 agreement with Keras {agreement:.4f} < {INT8_MIN_TOP1} "
                f"on {len(ref)} images")
        return {"top1_agreement": round(agreement, 6), "min_top1_agreement": INT8_MIN_TOP1}
    rtol = {"float32": FP32_ATOL, "float16": FP16_RTOL}.get(precision)
    if rtol is None:
        raise ValueError(f"unknown precision {precision!r}")
    tol = rtol * max(1.0, float(np.max(np.abs(ref))) if np.size(ref) else 1.0)
    diff = max_abs_diff(got, ref)
    if not diff <= tol:
        raise VerificationError(
            f"max abs diff to Keras {diff:.3g} > tolerance {tol:.3g} ({precision})")
    return {"max_abs_diff": diff, "tolerance": tol}


def median_latency_ms(fn, runs=50, warmup=5):
    """Median wall time of `fn()` in milliseconds, after `warmup` untimed calls.

    Example:
        >>> median_latency_ms(lambda: sum(range(100)), runs=5, warmup=1) >= 0
        True
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def predict_in_batches(predict, x, batch_size=256):
    """Run `predict` over `x` in chunks and concatenate the outputs.

    Example:
        >>> float(predict_in_batches(lambda b: b * 2, np.ones((5, 1)), batch_size=2).sum())
        10.0
    """
    outs = [np.asarray(predict(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
    return np.concatenate(outs, axis=0)
