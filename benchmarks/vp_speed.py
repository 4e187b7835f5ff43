"""VP's speed targets, measured in one run on the MNIST preset's classifier (vp_mnist_cnn, 28 x 28):

- explanation throughput: ``VP.explain`` (one pass of the explainer at H/m, no classifier) against the
  classifier's own ``predict`` on the same batch (target >= 1x);
- per-image explanation time against meaningful perturbation and extremal perturbations on the same images
  (target >= 100x faster; the paper reports up to 1000x, Figure 6);
- one VP training step (explainer forward, SOFT top-k forward and implicit backward, two classifier passes)
  against one training step of the classifier itself on the same batch (target <= 2.5x).

Each timing is the median of ``--repeats`` calls after a warm-up call (tracing excluded); the explainer is
untrained (its speed does not depend on its weights).

    python benchmarks/vp_speed.py [--n 256] [--batch-size 64] [--repeats 5] [--optimiser-images 16]

Writes results/vp_speed.json and replaces its section of RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data  # noqa: E402
from data.io import atomic_write  # noqa: E402
from eval import registry  # noqa: E402
from eval.report import environment  # noqa: E402
from measure import median_seconds  # noqa: E402
from sections import markers, write_section  # noqa: E402
from kernels.soft_topk import soft_topk  # noqa: E402
from vp import VP  # noqa: E402

SECTION = "vp_speed"
HERE = Path(__file__).resolve().parent


def measure(args) -> dict:
    ds = data.load("mnist")
    model = data.blackbox("mnist", recipe="vp_mnist_cnn", verbose=0)
    x = ds.x_test[:args.n].astype(np.float32)
    vp = VP(model, upsample=2, batch_size=args.batch_size, verbose=0)
    result = {"created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "n": args.n, "batch_size": args.batch_size, "repeats": args.repeats, "environment": environment()}

    explain = median_seconds(lambda: vp.explain(x), args.repeats)
    predict_fn = tf.function(lambda batch: model(batch, training=False))
    batches = [tf.constant(x[i:i + args.batch_size]) for i in range(0, len(x), args.batch_size)]
    predict = median_seconds(lambda: [predict_fn(b).numpy() for b in batches], args.repeats)
    result["throughput"] = {"vp_explain_s": explain, "classifier_predict_s": predict, "ratio": predict / explain}

    few = x[:args.optimiser_images]
    per_image = {"vp": explain / len(x)}
    for name, hyper in (("meaningful_perturbation", {}), ("extremal_perturbation", {})):
        method = registry.get(name, model, verbose=0, **hyper)
        per_image[name] = median_seconds(lambda: method.explain(few, batch_size=len(few)), 1) / len(few)
    result["per_image_s"] = per_image
    result["per_image_ratio"] = {name: seconds / per_image["vp"] for name, seconds in per_image.items() if name != "vp"}

    batch = tf.constant(x[:args.batch_size])
    vp_step = tf.function(vp.train_step)
    vp_seconds = median_seconds(lambda: [float(v) for v in vp_step(batch).values()], args.repeats)
    on_map = VP(model, upsample=2, topk_on="map", batch_size=args.batch_size, verbose=0)
    map_step = tf.function(on_map.train_step)
    map_seconds = median_seconds(lambda: [float(v) for v in map_step(batch).values()], args.repeats)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    labels = tf.constant(np.argmax(model.predict(x[:args.batch_size], verbose=0), axis=1))
    classifier_seconds = median_seconds(lambda: clone.train_on_batch(batch, labels), args.repeats)
    # The cost floor: the SOFT top-k alone (forward and implicit backward) on this batch's maps.
    scores = tf.random.stateless_normal((args.batch_size, vp.n_pixels), [0, 1])

    @tf.function
    def topk_step(s):
        with tf.GradientTape() as tape:
            tape.watch(s)
            mask = soft_topk(s, tf.constant(0.3 * vp.n_pixels), epsilon=vp.epsilon, iterations=vp.iterations)
            loss = tf.reduce_sum(mask * s)
        return tape.gradient(loss, s)

    topk_seconds = median_seconds(lambda: topk_step(scores).numpy(), args.repeats)
    result["training_step"] = {"vp_s": vp_seconds, "classifier_s": classifier_seconds,
                               "ratio": vp_seconds / classifier_seconds, "soft_topk_s": topk_seconds,
                               "vp_topk_on_map_s": map_seconds, "ratio_topk_on_map": map_seconds / classifier_seconds,
                               "soft_topk_share": topk_seconds / vp_seconds}
    print(json.dumps(result, indent=1, default=str), flush=True)
    return result


def markdown(result) -> str:
    start, end = markers(SECTION)
    t, p, s = result["throughput"], result["per_image_s"], result["training_step"]
    lines = [start, "", f"## VP speed (`benchmarks/vp_speed.py`, {result['created_utc']})", "",
             f"vp_mnist_cnn on MNIST 28 x 28, m = 2, {result['n']} test images in batches of {result['batch_size']}, "
             f"median of {result['repeats']} calls after a warm-up (the shared 2-core CPU).", "",
             "| measurement | VP | reference | ratio | target |", "|---|---|---|---|---|",
             f"| explain {result['n']} images vs the classifier's predict | {t['vp_explain_s']:.3f} s | "
             f"{t['classifier_predict_s']:.3f} s | {t['ratio']:.2f}x the throughput | >= 1x |"]
    for name, ratio in result["per_image_ratio"].items():
        lines.append(f"| seconds per image vs {name} | {p['vp']:.2e} | {p[name]:.2e} | {ratio:.0f}x faster | >= 100x |")
    lines += [f"| one training step vs the classifier's (batch {result['batch_size']}) | {s['vp_s']:.3f} s | "
              f"{s['classifier_s']:.3f} s | {s['ratio']:.2f}x the time | <= 2.5x |",
              f"| of which the SOFT top-k alone (200 Sinkhorn iterations, forward + implicit backward) | "
              f"{s['soft_topk_s']:.3f} s | | {s['soft_topk_share']:.0%} of the VP step | |",
              f"| one training step with `topk_on=\"map\"` (the top-k over the 14 x 14 map) | "
              f"{s['vp_topk_on_map_s']:.3f} s | {s['classifier_s']:.3f} s | {s['ratio_topk_on_map']:.2f}x the time | "
              f"<= 2.5x |", "", end]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256, help="test images explained and predicted")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--optimiser-images", type=int, default=16, help="images MP and EP explain (one call)")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--results-md", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    result = measure(args)
    atomic_write(Path(args.out) / "vp_speed.json", json.dumps(result, indent=2, default=str))
    write_section(Path(args.results_md), SECTION, markdown(result))


if __name__ == "__main__":
    main()
