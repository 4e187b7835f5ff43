"""MEED speed, as ratios against the black box measured in the same run (issue targets):

- explanation throughput of the explainer (y = M(x) inside, as served) vs the black box's own
  prediction throughput on the same batches — target: explainer >= 0.5x the black box;
- one MEED training step (approximator update + explainer update) vs one training step of the black
  box on the same batch — target: <= 4x (three networks, two updates);
- where a MEED step's time goes (the black box forward + GI prior, the approximator update, the
  explainer update).

Usage: python benchmarks/meed_speed.py [--preset fashion_mnist] [--repeats 5] [--out benchmarks/results]
Writes <out>/meed_speed.json; copy the printed table into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data  # noqa: E402
from data.io import atomic_write  # noqa: E402
from eval.report import environment  # noqa: E402
from meed import build, presets  # noqa: E402
from measure import median_seconds  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="fashion_mnist")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed repeat")
    parser.add_argument("--serve-batch", type=int, default=256, help="batch size of the throughput comparison")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)

    preset = presets.get(args.preset)
    dataset = data.load(preset.dataset, classes=preset.classes)
    blackbox = data.blackbox(preset.dataset, classes=preset.classes, verbose=0)
    model = build(preset, blackbox, seed=0)
    bs = preset.batch_size
    x = dataset.x_train[: bs * args.steps]
    batches = [tf.constant(x[i:i + bs]) for i in range(0, len(x), bs)]

    # Explanation vs prediction throughput (same inputs, both as compiled tf.functions).
    serve = [tf.constant(x[i:i + args.serve_batch]) for i in range(0, len(x), args.serve_batch)]
    predict = tf.function(lambda b: blackbox(b, training=False))
    explain = tf.function(lambda b: model(b, training=False))
    explainer_only = tf.function(lambda b, y: model.explainer([b, y], training=False))
    ys = [predict(b) for b in serve]
    t_predict = median_seconds(lambda: [predict(b).numpy() for b in serve], args.repeats)
    t_explain = median_seconds(lambda: [explain(b).numpy() for b in serve], args.repeats)
    t_e_only = median_seconds(lambda: [explainer_only(b, y).numpy() for b, y in zip(serve, ys)], args.repeats)

    # One MEED training step vs one black-box training step on the same batch (both via train_on_batch).
    recipe = data.models.recipe(data.models.default_recipe(preset.dataset))
    bb_copy = recipe.builder(input_shape=dataset.feature_shape, n_classes=dataset.n_classes)
    bb_copy.compile(optimizer=recipe.optimizer(), loss="categorical_crossentropy")
    targets = [blackbox(b, training=False) for b in batches]
    t_meed = median_seconds(lambda: [model.train_on_batch(b) for b in batches], args.repeats) / len(batches)
    t_bb = median_seconds(lambda: [bb_copy.train_on_batch(b, t) for b, t in zip(batches, targets)],
                          args.repeats) / len(batches)

    # Where a MEED step goes.
    prepare = tf.function(model.prepare)
    parts = prepare(batches[0])
    approximator_step = tf.function(model.approximator_step)
    explainer_step = tf.function(model.explainer_step)
    t_prepare = median_seconds(lambda: [prepare(b) for b in batches][-1][1].numpy(), args.repeats) / len(batches)
    t_approx = median_seconds(lambda: approximator_step(*parts)[0].numpy(), args.repeats)
    t_expl = median_seconds(lambda: explainer_step(*parts).numpy(), args.repeats)

    n = len(x)
    result = {
        "preset": preset.name, "batch_size": bs, "samples": n,
        "blackbox_predict_samples_per_s": n / t_predict,
        "explainer_samples_per_s": n / t_explain,
        "explainer_vs_blackbox_throughput": t_predict / t_explain,
        "explainer_network_alone_vs_blackbox_time": t_e_only / t_predict,
        "meed_step_s": t_meed, "blackbox_train_step_s": t_bb, "meed_vs_blackbox_step": t_meed / t_bb,
        "meed_step_parts_s": {"blackbox forward + GI prior": t_prepare, "approximator update": t_approx,
                              "explainer update": t_expl},
        "environment": environment(),
    }
    out = Path(args.out)
    atomic_write(out / "meed_speed.json", json.dumps(result, indent=2, default=str))
    print(f"| explainer throughput / black-box predict throughput | {result['explainer_vs_blackbox_throughput']:.2f}x "
          f"| >= 0.5x | {result['explainer_samples_per_s']:.0f} vs {result['blackbox_predict_samples_per_s']:.0f} samples/s |")
    print(f"| explainer network alone (given y) / black-box forward, time | {t_e_only / t_predict:.2f}x | | "
          f"E costs more than M: full-resolution 3x3 convolutions of 32 and 64 channels |")
    print(f"| MEED training step / black-box training step | {result['meed_vs_blackbox_step']:.2f}x | <= 4x "
          f"| {1000 * t_meed:.0f} ms vs {1000 * t_bb:.0f} ms per batch of {bs} |")
    print("| MEED step parts | " + ", ".join(f"{k}: {1000 * v:.0f} ms" for k, v in
                                           result["meed_step_parts_s"].items()) + " | | |")
    return result


if __name__ == "__main__":
    main()
