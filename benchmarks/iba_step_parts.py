"""Where one IBA Per-Sample step spends its time, part by part, against what it cannot avoid.

Times, in one run at the Fashion-MNIST benchmark's shape (32 images x 10 copies of a 24x24x64 map after
conv2 of mnist_cnn), each kernel of one optimisation step (iba.step) and the tail's forward + backward
on the copies (the raw reference of benchmarks/iba_speed.py, one step), plus two memory floors: writing
one Z tensor (N x copies x h x w x c floats) and reading one dZ tensor once, the two passes over the
copies that any implementation needs besides the tail. Each part runs alone on the same tensors, so
the sum is close to, not equal to, a step inside the optimisation loop.

Usage: python benchmarks/iba_step_parts.py [--n 32] [--repeats 20] [--out benchmarks/results]
Writes <out>/iba_step_parts.json and prints the table for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data  # noqa: E402
from data.io import atomic_write  # noqa: E402
from eval.papers import MEED_CLASSES  # noqa: E402
from eval.report import environment  # noqa: E402
from iba import EstimationWarning, InformationBottleneck  # noqa: E402
from iba import step as kernels  # noqa: E402
from kernels import blur_with_matrices  # noqa: E402

COPIES = 10


def milliseconds(fn, repeats):
    fn()
    fn()  # warm-up: tracing and XLA compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)

    ds = data.load("fashion_mnist", classes=(2, 6))
    x = ds.x_test[: args.n].astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimationWarning)
        blackbox = data.blackbox("fashion_mnist", classes=MEED_CLASSES["fashion_mnist"], verbose=0)
        ib = InformationBottleneck(blackbox, "conv2", seed=0).fit(x, verbose=0)
    step = ib._step  # the kernels the optimisation uses, with this bottleneck's settings
    features = ib.head(x)
    mean, std, active = (tf.convert_to_tensor(v) for v in (ib._mean, ib._std, ib._active))
    rng = np.random.default_rng(0)
    alpha = tf.constant(rng.normal(3.0, 2.0, size=features.shape).astype(np.float32))
    noise = tf.constant(rng.normal(size=(COPIES,) + ib.feature_shape).astype(np.float32))
    targets = tf.zeros(args.n, tf.int32)
    lam, one_minus = step.lambdas(alpha)
    z = step.noisy_copies(lam, one_minus, features, mean, std, active, noise)
    grad_z = ib._tail_gradient(z, targets)
    g = kernels._mask_gradient(grad_z, z, noise, lam, one_minus, features, mean, std, active, 1e-4, False)
    zeros = tf.zeros_like(alpha)

    @tf.function(jit_compile=True)
    def write_z():
        return tf.fill(tf.shape(z), 1.5)

    @tf.function(jit_compile=True)
    def read_dz():
        return tf.reduce_sum(grad_z, axis=1)

    parts = {
        "tail forward + backward on the copies (raw reference, one step)": lambda: ib._tail_gradient(z, targets),
        "sigmoid(alpha), sigmoid(-alpha)": lambda: kernels._sigmoids(alpha),
        "blur of lambda and 1 - lambda (matmuls)": lambda: step.lambdas(alpha),
        "Z: the noisy copies (XLA)": lambda: step.noisy_copies(lam, one_minus, features, mean, std, active, noise),
        "dL/dlambda - dL/d(1 - lambda): reductions over the copies + capacity (XLA)":
            lambda: kernels._mask_gradient(grad_z, z, noise, lam, one_minus, features, mean, std, active, 1e-4,
                                           False),
        "adjoint blur (matmuls)": lambda: blur_with_matrices(g, *step._adjoint),
        "Adam on alpha (XLA)": lambda: kernels._adam(alpha, g, zeros, zeros, 1, 1.0, 0.9, 0.999, 1e-8),
        "floor: writing Z once": write_z,
        "floor: reading dZ once": read_dz,
    }
    # Each part traced on its own (as inside the optimisation's graph; eager calls would add dispatch).
    rows = {name: milliseconds(tf.function(fn), args.repeats) for name, fn in parts.items()}
    # "blur of lambda and 1 - lambda" includes the sigmoids: report the blur alone.
    rows["blur of lambda and 1 - lambda (matmuls)"] -= rows["sigmoid(alpha), sigmoid(-alpha)"]
    tail = rows["tail forward + backward on the copies (raw reference, one step)"]
    own = sum(v for k, v in rows.items() if not k.startswith(("tail", "floor")))
    payload = {"n_images": args.n, "copies": COPIES, "feature_shape": list(ib.feature_shape),
               "milliseconds": rows, "bottleneck_own_ms": own, "tail_ms": tail,
               "step_over_tail": (tail + own) / tail, "environment": environment(),
               "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = atomic_write(Path(args.out) / "iba_step_parts.json", json.dumps(payload, indent=2) + "\n")
    print(f"| part of one step ({args.n} images x {COPIES} copies, 24x24x64) | ms |\n|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.2f} |")
    print(f"| the bottleneck's own parts, summed | {own:.2f} |\n| (tail + own) / tail | "
          f"{(tail + own) / tail:.2f}x |")
    print(f"written {path}")


if __name__ == "__main__":
    main()
