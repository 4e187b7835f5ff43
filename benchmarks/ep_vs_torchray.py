"""Extremal perturbations: ours against TorchRay's (the authors' reference), same CNN, same images, one run.

Both sides explain the first ``--n`` test images of the MEED Fashion-MNIST black box (data.blackbox, the
``mnist_cnn`` recipe, cached) for the model's predictions, with the same settings (areas, iterations, the
smooth-mask step and sigma, the pyramid's max_blur; ours: ``baselines.extremal``). TorchRay runs in its own
PyTorch virtualenv (``--torch-python``; ``torchray_ep.py``) on a PyTorch copy of the Keras weights, one
image per call (its API); ours explains all images in one call.

What is measured:
- the port: the largest difference between the Keras and the PyTorch logits on the images;
- implementation equality: after ``--check-steps`` iterations (default 5) the masks of both sides should
  agree to float rounding (max |difference|);
- agreement after the full ``--steps``: per-image Pearson r and IoU of the regions above 0.5, ours against
  TorchRay, beside TorchRay against itself with its initial mask parameters moved by at most 1e-6 --
  TorchRay is deterministic (two runs give the same masks) and its float32-only filters rule out a
  float64 run; the area loss sorts the mask, so values closer than rounding swap ranks, and the nudge
  shows how far such rounding-sized differences alone move the result; the area above 0.5 reached;
- speed: seconds per image (ours: one traced call on all images, after a warm-up call; TorchRay: the sum of
  its per-image calls), the ratio TorchRay / ours.

    python benchmarks/ep_vs_torchray.py [--n 16] [--steps 800] [--torch-python /work/venv_torch/bin/python]

Writes results/ep_vs_torchray.json and replaces its section of RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data  # noqa: E402
from data.io import atomic_write  # noqa: E402
from eval import registry  # noqa: E402
from eval.papers import MEED_CLASSES  # noqa: E402
from eval.report import environment  # noqa: E402
from kernels import hooks  # noqa: E402
from sections import markers, write_section  # noqa: E402

SECTION = "ep_vs_torchray"
HERE = Path(__file__).resolve().parent


def reference(model, x, targets, settings, torch_python):
    """TorchRay's masks and seconds (torchray_ep.py in the PyTorch virtualenv)."""
    weights = {f"{layer}_{kind}": w for layer in ("conv1", "conv2", "dense1", "logits")
               for kind, w in zip(("kernel", "bias"), model.get_layer(layer).get_weights())}
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(inputs, images=x, targets=targets, settings=np.array(json.dumps(settings)), **weights)
        command = [torch_python, str(HERE / "torchray_ep.py"), str(inputs), str(outputs)]
        subprocess.run(command + ["--nudged"], check=True)
        with np.load(outputs) as out:
            return {key: out[key] for key in out.files}


def ours(model, x, targets, settings, batch_size):
    """Our masks (N, A, H, W) and seconds per image of a traced call (a warm-up call first)."""
    explainer = registry.get("extremal_perturbation", model, areas=settings["areas"], steps=settings["steps"],
                             step=settings["step"], sigma=settings["sigma"], max_blur=settings["max_blur"],
                             variant=settings["variant"], verbose=0)
    explainer.area_masks(x, targets, batch_size=batch_size)
    start = time.perf_counter()
    masks = explainer.area_masks(x, targets, batch_size=batch_size)
    return masks, (time.perf_counter() - start) / len(x)


def pearson(a, b) -> np.ndarray:
    """Per-mask Pearson r of two stacks of masks (N, A, H, W) -> (N, A)."""
    a = a.reshape(*a.shape[:2], -1) - a.reshape(*a.shape[:2], -1).mean(-1, keepdims=True)
    b = b.reshape(*b.shape[:2], -1) - b.reshape(*b.shape[:2], -1).mean(-1, keepdims=True)
    return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def iou(a, b) -> np.ndarray:
    """Per-mask IoU of the regions above 0.5 (N, A)."""
    a, b = a > 0.5, b > 0.5
    union = (a | b).sum(axis=(2, 3))
    return np.where(union > 0, (a & b).sum(axis=(2, 3)) / np.maximum(union, 1), 1.0)


def summary(values) -> dict:
    values = np.asarray(values, np.float64).ravel()
    return {"mean": float(values.mean()), "min": float(values.min()), "median": float(np.median(values))}


def measure(args) -> dict:
    model = data.blackbox("fashion_mnist", classes=MEED_CLASSES["fashion_mnist"], verbose=0)
    ds = data.load("fashion_mnist", classes=MEED_CLASSES["fashion_mnist"])
    x = ds.x_test[:args.n].astype(np.float32)
    targets = model.predict(x, verbose=0).argmax(axis=1)
    probe = registry.get("extremal_perturbation", model, areas=args.areas, verbose=0)
    settings = {"areas": list(probe.areas), "step": probe.step, "sigma": probe.sigma, "max_blur": probe.max_blur,
                "variant": args.variant, "pooled_shape": list(model.get_layer("pool").output.shape[1:])}
    logits = hooks.class_logits(model, x, hooks.find_logits(model), training=False).numpy()
    result = {"created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "n": args.n, "settings": settings, "environment": environment(), "runs": {}}
    for steps in (args.check_steps, args.steps):
        run_settings = {**settings, "steps": steps}
        mine, seconds = ours(model, x, targets, run_settings, args.batch_size)
        theirs = reference(model, x, targets, run_settings, args.torch_python)
        run = {"steps": steps, "ours_seconds_per_image": seconds,
               "torchray_seconds_per_image": float(theirs["seconds_exact"].mean()),
               "max_abs_difference": float(np.abs(mine - theirs["masks_exact"]).max()),
               "pearson_ours_torchray": summary(pearson(mine, theirs["masks_exact"])),
               "iou_ours_torchray": summary(iou(mine, theirs["masks_exact"])),
               "area_above_half_ours": summary((mine > 0.5).mean(axis=(2, 3))),
               "area_above_half_torchray": summary((theirs["masks_exact"] > 0.5).mean(axis=(2, 3)))}
        run["speed_ratio"] = run["torchray_seconds_per_image"] / seconds
        run["max_abs_difference_torchray_nudged"] = float(np.abs(theirs["masks_nudged"] - theirs["masks_exact"]).max())
        run["pearson_torchray_nudged"] = summary(pearson(theirs["masks_exact"], theirs["masks_nudged"]))
        run["iou_torchray_nudged"] = summary(iou(theirs["masks_exact"], theirs["masks_nudged"]))
        result["port_max_logit_difference"] = float(np.abs(logits - theirs["logits"]).max())
        result["versions"] = json.loads(str(theirs["versions"]))
        result["runs"][str(steps)] = run
        print(json.dumps(run, indent=1), flush=True)
    return result


def markdown(result) -> str:
    start, end = markers(SECTION)
    s = result["settings"]
    lines = [start, "", f"## Extremal perturbations vs TorchRay (`benchmarks/ep_vs_torchray.py`, {result['created_utc']})",
             "", f"{result['n']} Fashion-MNIST test images (the MEED black box, 28 x 28), targets = predictions, "
             f"areas {s['areas']}, variant {s['variant']}, step {s['step']}, sigma {s['sigma']}, "
             f"max_blur {s['max_blur']:.3g}; TorchRay {result['versions']['torchray']} on torch "
             f"{result['versions']['torch']} (one image per call), ours one call for all images. Keras vs "
             f"PyTorch logits differ by at most {result['port_max_logit_difference']:.2e}.", "",
             "| iterations | max abs diff ours-TorchRay / TorchRay-nudged | r ours-TorchRay (mean / min) | IoU>0.5 ours-TorchRay | "
             "r TorchRay-TorchRay nudged | IoU TorchRay-TorchRay nudged | area>0.5 ours / TorchRay | s per image ours / TorchRay | ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in result["runs"].values():
        floor_r, floor_iou = run["pearson_torchray_nudged"], run["iou_torchray_nudged"]
        lines.append(
            f"| {run['steps']} | {run['max_abs_difference']:.2e} / {run['max_abs_difference_torchray_nudged']:.2e} | "
            f"{run['pearson_ours_torchray']['mean']:.4f} / {run['pearson_ours_torchray']['min']:.4f} | "
            f"{run['iou_ours_torchray']['mean']:.3f} | {floor_r['mean']:.4f} / {floor_r['min']:.4f} | "
            f"{floor_iou['mean']:.3f} | {run['area_above_half_ours']['mean']:.3f} / {run['area_above_half_torchray']['mean']:.3f} | "
            f"{run['ours_seconds_per_image']:.3f} / {run['torchray_seconds_per_image']:.3f} | "
            f"{run['speed_ratio']:.1f}x |")
    lines += ["", end]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=16, help="test images explained")
    parser.add_argument("--steps", type=int, default=800, help="iterations of the full run (TorchRay's 800)")
    parser.add_argument("--check-steps", type=int, default=5, help="iterations of the equality check")
    parser.add_argument("--areas", type=float, nargs="+", default=[0.1])
    parser.add_argument("--variant", default="preserve", choices=("preserve", "delete", "dual"))
    parser.add_argument("--batch-size", type=int, default=32, help="images per call of ours")
    parser.add_argument("--torch-python", default="/work/venv_torch/bin/python")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--results-md", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    result = measure(args)
    atomic_write(Path(args.out) / "ep_vs_torchray.json", json.dumps(result, indent=2))
    write_section(Path(args.results_md), SECTION, markdown(result))


if __name__ == "__main__":
    main()
