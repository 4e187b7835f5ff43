"""SOFT top-k: implicit vs unrolled gradient, time and peak memory of forward + backward.

For each shape (N, n) in {(128, 784), (16, 50176)} (MNIST-sized and ImageNet-sized 224 x 224 score maps)
and each ``gradient`` mode of kernels.soft_topk, at the defaults (epsilon 0.1, 200 iterations) and
k = n / 10 given as a float tensor (as in a VP training step):

- time: one traced step (GradientTape, soft_topk, loss = sum(mask * w) for a fixed random w, gradient
  w.r.t. the scores), median of ``--repeats`` calls after a warm-up call; the forward alone likewise
  (the same code in both modes: timed once, in the implicit case's process);
- peak memory: each case runs in its own Python process; the process's maximum resident set size
  (resource.getrusage(RUSAGE_SELF).ru_maxrss) after the timed steps, and its increase over the maximum
  RSS measured just before the first call (TensorFlow imported, inputs built). On CPU
  tf.config.experimental.get_memory_info is not available and tracemalloc does not see TensorFlow's
  allocator, so RSS is the measure; the forward-only timing runs after the peak is read;
- agreement: the two modes' masks (the same forward) and gradients of the last timed step (saved by
  each process), max |difference| relative to max |unrolled gradient|, and how far the loop is from
  convergence (max |mask(200) - mask(400 iterations)|).

Usage: nice -n 10 python benchmarks/soft_topk_speed.py [--repeats 3] [--out benchmarks/results]
Writes <out>/soft_topk_speed.json and its section of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

SECTION = "soft_topk_speed"
SHAPES = ((128, 784), (16, 50176))
MODES = ("implicit", "unrolled")
EPSILON, ITERATIONS = 0.1, 200


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _inputs(shape):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    scores = tf.constant(rng.normal(size=shape).astype(np.float32))
    weights = tf.constant(rng.normal(size=shape).astype(np.float32))
    return scores, weights, tf.constant(float(shape[1] // 10))


def _step(mode):
    import tensorflow as tf

    from kernels import soft_topk

    @tf.function
    def step(scores, weights, k):
        with tf.GradientTape() as tape:
            tape.watch(scores)
            mask = soft_topk(scores, k, epsilon=EPSILON, iterations=ITERATIONS, gradient=mode)
            loss = tf.reduce_sum(mask * weights)
        return mask, tape.gradient(loss, scores)

    return step


def _median_seconds(fn, repeats):
    fn()  # warm-up: tracing
    return statistics.median(timeit.repeat(fn, number=1, repeat=repeats))


def run_case(shape, mode, repeats, arrays: str) -> dict:
    """One (shape, mode) case; meant to run alone in its process (the peak RSS is the process's). Saves the
    mask and gradient of the last step to ``arrays`` (an .npz) for the agreement check."""
    import numpy as np
    import tensorflow as tf

    from kernels import soft_topk

    scores, weights, k = _inputs(shape)
    baseline = _max_rss_mib()
    step = _step(mode)
    last = {}

    def timed():
        last["mask"], last["grad"] = (t.numpy() for t in step(scores, weights, k))

    seconds = _median_seconds(timed, repeats)
    peak = _max_rss_mib()
    row = {"shape": list(shape), "gradient": mode, "k": float(k.numpy()), "forward_backward_seconds": seconds,
           "max_rss_mib": peak, "max_rss_before_mib": baseline, "max_rss_increase_mib": peak - baseline,
           "repeats": repeats}
    if mode == "implicit":  # the forward is the same code in both modes: timed once, after the peak is read
        forward = tf.function(lambda s, kk, it: soft_topk(s, kk, epsilon=EPSILON, iterations=it))
        row["forward_seconds"] = _median_seconds(lambda: forward(scores, k, ITERATIONS).numpy(), repeats)
        last["mask_long"] = forward(scores, k, 2 * ITERATIONS).numpy()
    np.savez(arrays, **last)
    return row


def agreement(shape, implicit: dict, unrolled: dict) -> dict:
    import numpy as np

    grad_i, grad_u = implicit["grad"], unrolled["grad"]
    return {"shape": list(shape), "mask_max_abs_difference": float(np.abs(implicit["mask"] - unrolled["mask"]).max()),
            "gradient_max_abs_difference": float(np.abs(grad_i - grad_u).max()),
            "gradient_max_abs_unrolled": float(np.abs(grad_u).max()),
            "gradient_relative_difference": float(np.abs(grad_i - grad_u).max() / np.abs(grad_u).max()),
            "mask_change_200_to_400_iterations": float(np.abs(implicit["mask_long"] - implicit["mask"]).max())}


def _child(job: dict) -> dict:
    """Run ``job`` in a fresh Python process (its own peak RSS) and return its JSON answer."""
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(result) -> str:
    from sections import markers

    start, end = markers(SECTION)
    rows = {(tuple(r["shape"]), r["gradient"]): r for r in result["cases"]}
    lines = [start, "", f"## SOFT top-k gradient (`benchmarks/soft_topk_speed.py`, {result['created_utc']})", "",
             f"kernels.soft_topk at epsilon {EPSILON}, {ITERATIONS} iterations, k = n / 10 (a float tensor), "
             "N(0, 1) scores; one traced step = forward + gradient of sum(mask * w) w.r.t. the scores; median of "
             f"{result['repeats']} calls after a warm-up, on 2 shared CPU cores (`nice`, other jobs running: "
             "absolute times are indicative, the ratios of one run are what counts). The forward is the same "
             "code in both modes and is timed once. Peak memory: each case in its own process, max RSS "
             "(`resource.getrusage`) after the timed steps, and its increase over the max RSS just before the "
             "first call (TensorFlow imported, inputs built).", "",
             "| shape (N, n) | forward alone s | gradient | forward + backward s | max RSS MiB | increase MiB |",
             "|---|---|---|---|---|---|"]
    for shape in SHAPES:
        imp, unr = rows[(shape, "implicit")], rows[(shape, "unrolled")]
        for r in (imp, unr):
            lines.append(f"| {shape} | {imp['forward_seconds']:.3f} | {r['gradient']} | "
                         f"{r['forward_backward_seconds']:.3f} | {r['max_rss_mib']:.0f} | "
                         f"{r['max_rss_increase_mib']:.0f} |")
        lines.append(f"| {shape} | | **unrolled / implicit** | "
                     f"**{unr['forward_backward_seconds'] / imp['forward_backward_seconds']:.2f}x** | "
                     f"{unr['max_rss_mib'] / imp['max_rss_mib']:.2f}x | "
                     f"**{unr['max_rss_increase_mib'] / max(imp['max_rss_increase_mib'], 1.0):.1f}x** |")
    lines += ["", "Agreement of the two modes on the same inputs (the forward is the same code: masks equal):", "",
              "| shape (N, n) | max abs mask difference | max abs gradient difference / max abs gradient | "
              "max abs gradient | mask change 200 -> 400 iterations |", "|---|---|---|---|---|"]
    for a in result["agreement"]:
        lines.append(f"| {tuple(a['shape'])} | {a['mask_max_abs_difference']:.1e} | "
                     f"{a['gradient_max_abs_difference']:.1e} / {a['gradient_max_abs_unrolled']:.3g} = "
                     f"{a['gradient_relative_difference']:.1e} | {a['gradient_max_abs_unrolled']:.3g} | "
                     f"{a['mask_change_200_to_400_iterations']:.1e} |")
    lines += ["", end]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--results-md", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(run_case(tuple(job["shape"]), job["gradient"], job["repeats"], job["arrays"])), flush=True)
        return

    from data.io import atomic_write
    from eval.report import environment
    from sections import write_section

    import numpy as np

    cases, agreements = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in SHAPES:
            arrays = {}
            for mode in MODES:
                arrays[mode] = str(Path(tmp) / f"{mode}.npz")
                cases.append(_child({"shape": shape, "gradient": mode, "repeats": args.repeats,
                                     "arrays": arrays[mode]}))
                print(json.dumps(cases[-1]), flush=True)
            with np.load(arrays["implicit"]) as implicit, np.load(arrays["unrolled"]) as unrolled:
                agreements.append(agreement(shape, dict(implicit), dict(unrolled)))
            print(json.dumps(agreements[-1]), flush=True)
    result = {"created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "epsilon": EPSILON, "iterations": ITERATIONS, "repeats": args.repeats, "cases": cases,
              "agreement": agreements, "memory_method": "max RSS per process (resource.getrusage RUSAGE_SELF)",
              "environment": environment()}
    path = atomic_write(Path(args.out) / "soft_topk_speed.json", json.dumps(result, indent=2) + "\n")
    section = markdown(result)
    write_section(Path(args.results_md), SECTION, section)
    print(section)
    print(f"written {path}")


if __name__ == "__main__":
    main()
