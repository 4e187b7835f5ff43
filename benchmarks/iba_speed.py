"""IBA Per-Sample speed, as ratios measured in the same run (issue targets):

- batching: explaining N images in one call vs N calls of one image each (same seed, same settings) --
  target >= 8x on the Fashion-MNIST black box (N = 32); the ResNet-50 ratio is reported (N = 4 there:
  one call runs the tail on N x 10 copies, whose activations and gradients must fit in memory);
- overhead: time per heatmap vs the raw cost of what it must compute, 10 x (forward + backward of the
  part after the layer on the 10 noisy copies), measured as one tf.function on the same N images
  (the reference is batched like the explanation) -- target <= 1.5x.

Also measured, to read those two: the raw reference's own batching ratio (N calls of one image vs one
call of N: the ceiling of any implementation whose overhead is the same share at both sizes), and the
time per heatmap with fresh noise at every call (seed=None: the noise is drawn inside the optimisation;
with a fixed seed, as in the rows above, the call's noise is drawn once and reused by later calls).

Models: the cached Fashion-MNIST black box (mnist_cnn, bottleneck after conv2, 24x24x64) and
keras.applications ResNet50 (weights=None) at 224 px after conv3_block4_out (28x28x512; the paper's
conv3_4). Statistics are estimated on a few images only (timing does not depend on them).

Usage: nice -n 5 python benchmarks/iba_speed.py [--repeats 3] [--skip-resnet] [--out benchmarks/results]
Writes <out>/iba_speed.json; the table goes to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data  # noqa: E402
from data.io import atomic_write  # noqa: E402
from eval.papers import MEED_CLASSES  # noqa: E402
from eval.report import environment  # noqa: E402
from iba import EstimationWarning, InformationBottleneck  # noqa: E402
from meed_speed import median_seconds  # noqa: E402  (the sibling script's timer: warm-up, then the median)

STEPS, COPIES = 10, 10  # the paper's iterations and batch of noisy copies (Table 2)


def raw_reference(ib: InformationBottleneck):
    """10 x (forward + backward of the tail w.r.t. its input) on 10 copies of each image's features."""
    tail = ib.split.logits_tail or ib.split.tail

    @tf.function
    def run(features):
        z = tf.repeat(features, COPIES, axis=0)
        total = tf.constant(0.0)
        for _ in tf.range(STEPS):
            with tf.GradientTape() as tape:
                tape.watch(z)
                loss = tf.reduce_sum(tf.nn.log_softmax(tail(z, training=False))[:, 0])
            total += tf.reduce_sum(tape.gradient(loss, z))
        return total

    return run


def measure(name, model, layer, x, repeats):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimationWarning)
        ib = InformationBottleneck(model, layer, steps=STEPS, copies=COPIES, seed=0).fit(x, verbose=0)
    n = len(x)
    batched = median_seconds(lambda: ib.explain(x, batch_size=n, verbose=0), repeats)
    singles = median_seconds(lambda: [ib.explain(x[i:i + 1], verbose=0) for i in range(n)], repeats)
    ib.seed = None  # fresh noise at every call: drawn inside the optimisation instead of reused
    fresh = median_seconds(lambda: ib.explain(x, batch_size=n, verbose=0), repeats)
    reference = raw_reference(ib)
    features = ib.head(x)
    raw = median_seconds(lambda: reference(features).numpy(), repeats)
    raw_singles = median_seconds(lambda: [reference(features[i:i + 1]).numpy() for i in range(n)], repeats)
    row = {
        "model": name, "layer": layer, "feature_shape": list(ib.feature_shape), "n_images": n,
        "batched_seconds": batched, "one_by_one_seconds": singles, "batching_speedup": singles / batched,
        "seconds_per_heatmap": batched / n, "fresh_noise_seconds_per_heatmap": fresh / n,
        "raw_seconds_per_image": raw / n, "overhead_vs_raw": batched / raw, "fresh_noise_overhead_vs_raw": fresh / raw,
        "raw_one_by_one_seconds_per_image": raw_singles / n, "raw_batching_speedup": raw_singles / raw,
    }
    print(json.dumps(row), flush=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=32, help="images of the Fashion-MNIST measurement")
    parser.add_argument("--resnet-n", type=int, default=4, help="images of the ResNet-50 measurement")
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)

    rows = []
    ds = data.load("fashion_mnist", classes=(2, 6))
    blackbox = data.blackbox("fashion_mnist", classes=MEED_CLASSES["fashion_mnist"], verbose=0)
    rows.append(measure("fashion_mnist mnist_cnn", blackbox, "conv2", ds.x_test[: args.n].astype(np.float32),
                        args.repeats))
    if not args.skip_resnet:
        keras.utils.set_random_seed(0)
        resnet = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
        x = np.random.default_rng(0).uniform(0, 255, size=(args.resnet_n, 224, 224, 3)).astype(np.float32)
        x = keras.applications.resnet50.preprocess_input(x)
        rows.append(measure("ResNet50 224px (weights=None)", resnet, "conv3_block4_out", x,
                            max(1, args.repeats - 2)))
    payload = {"rows": rows, "steps": STEPS, "copies": COPIES, "environment": environment(),
               "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = atomic_write(Path(args.out) / "iba_speed.json", json.dumps(payload, indent=2) + "\n")
    print("| model | images | batched / one-by-one speedup (raw reference's own) | time per heatmap / raw 10 x "
          "(fwd + bwd of the tail on 10 copies); with fresh noise |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']}, after {row['layer']} | {row['n_images']} | {row['batching_speedup']:.2f}x "
              f"({row['raw_batching_speedup']:.2f}x) | {row['overhead_vs_raw']:.2f}x "
              f"({1000 * row['seconds_per_heatmap']:.1f} vs {1000 * row['raw_seconds_per_image']:.1f} ms); "
              f"{row['fresh_noise_overhead_vs_raw']:.2f}x |")
    print(f"written {path}")


if __name__ == "__main__":
    main()
