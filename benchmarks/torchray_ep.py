"""The reference side of ``ep_vs_torchray.py``: TorchRay's extremal perturbations on a PyTorch copy of a CNN.

Runs in the PyTorch virtualenv (torch 2.13.0 CPU and ``pip install --no-deps torchray``; see
benchmarks/README.md), never in the project's environment, and imports nothing of the project. Input: an
.npz written by ``ep_vs_torchray.py`` with the Keras weights of the data.models ``mnist_cnn`` architecture
(conv1, conv2, max-pool, flatten, dense1, logits), the images (N, H, W, C), the targets and the settings;
output: an .npz with the masks (N, A, H, W) of one TorchRay call per image (its API takes one image) and
the seconds of each call, and with ``--nudged`` the same with the initial mask parameters moved by at most
1e-6 (``NudgedStart``; TorchRay builds its filters in float32, so a float64 run is not possible).

TorchRay does not expose the blur pyramid's ``max_blur`` (always 20 px, meant for 224-px images); the
settings' value is set as the default of its ``Perturbation`` class so that both sides blur alike.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import time

import numpy as np
import torch
from torch import nn
from torchray.attribution import extremal_perturbation as ep


class MnistCNN(nn.Module):
    """data.models.mnist_cnn in PyTorch, returning the logits (TorchRay's reward reads them)."""

    def __init__(self, weights: dict[str, np.ndarray], pooled_shape: tuple[int, int, int]):
        super().__init__()
        self.conv1 = nn.Conv2d(weights["conv1_kernel"].shape[2], weights["conv1_kernel"].shape[3], 3)
        self.conv2 = nn.Conv2d(weights["conv2_kernel"].shape[2], weights["conv2_kernel"].shape[3], 3)
        self.dense1 = nn.Linear(*weights["dense1_kernel"].shape)
        self.logits = nn.Linear(*weights["logits_kernel"].shape)
        with torch.no_grad():
            for conv in ("conv1", "conv2"):  # Keras (kh, kw, in, out) -> PyTorch (out, in, kh, kw)
                getattr(self, conv).weight.copy_(torch.from_numpy(weights[f"{conv}_kernel"].transpose(3, 2, 0, 1)))
                getattr(self, conv).bias.copy_(torch.from_numpy(weights[f"{conv}_bias"]))
            # Keras flattens (h, w, c), PyTorch (c, h, w): reorder dense1's input rows.
            h, w, c = pooled_shape
            kernel = weights["dense1_kernel"].reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
            self.dense1.weight.copy_(torch.from_numpy(kernel.T.copy()))
            self.dense1.bias.copy_(torch.from_numpy(weights["dense1_bias"]))
            self.logits.weight.copy_(torch.from_numpy(weights["logits_kernel"].T.copy()))
            self.logits.bias.copy_(torch.from_numpy(weights["logits_bias"]))

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        x = torch.flatten(nn.functional.max_pool2d(x, 2), 1)
        return self.logits(torch.relu(self.dense1(x)))


class NudgedStart:
    """``torch`` as TorchRay's module sees it, except that the mask parameters start at 1 - U(0, 1e-6).

    TorchRay creates them with ``torch.ones(len(areas), 1, h, w)`` (the only 4-D ``ones`` it calls). The
    area loss sorts the mask, so values closer than float rounding can swap ranks and send the gradient
    of their pixels to the other side of the area boundary: this nudge shows how far rounding-sized
    differences alone move the result of hundreds of steps.
    """

    def __init__(self, module):
        self._module = module
        self._rng = np.random.default_rng(0)

    def ones(self, *shape, **kwargs):
        ones = self._module.ones(*shape, **kwargs)
        if len(shape) != 4:
            return ones
        return ones - torch.from_numpy(self._rng.uniform(0, 1e-6, tuple(shape)).astype(np.float32))

    def __getattr__(self, name):
        return getattr(self._module, name)


def run(model, images, targets, settings):
    """TorchRay masks (N, A, H, W) and seconds per image for ``images`` (N, C, H, W)."""
    model = model.eval()
    masks, seconds = [], []
    for image, target in zip(images, targets):
        x = torch.from_numpy(image[None])
        start = time.perf_counter()
        mask, _ = ep.extremal_perturbation(model, x, int(target), areas=settings["areas"],
                                           max_iter=settings["steps"], step=settings["step"],
                                           sigma=settings["sigma"], variant=settings["variant"])
        seconds.append(time.perf_counter() - start)
        masks.append(mask[:, 0].detach().to(torch.float64).numpy())
    return np.stack(masks), np.array(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", help=".npz written by ep_vs_torchray.py")
    parser.add_argument("outputs", help=".npz to write")
    parser.add_argument("--nudged", action="store_true",
                        help="also run with the mask parameters starting at 1 - U(0, 1e-6) (the rounding floor)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = np.load(args.inputs)
    settings = json.loads(str(data["settings"]))
    weights = {key: data[key] for key in data.files if key.endswith(("_kernel", "_bias"))}
    defaults = list(ep.Perturbation.__init__.__defaults__)  # (num_levels, max_blur, type)
    defaults[1] = settings["max_blur"]
    ep.Perturbation.__init__.__defaults__ = tuple(defaults)
    model = MnistCNN(weights, tuple(settings["pooled_shape"]))
    images = data["images"].transpose(0, 3, 1, 2).copy()
    out = {}
    out["masks_exact"], out["seconds_exact"] = run(model, images, data["targets"], settings)
    if args.nudged:
        ep.torch = NudgedStart(torch)
        out["masks_nudged"], out["seconds_nudged"] = run(model, images, data["targets"], settings)
        ep.torch = torch
    out["logits"] = model(torch.from_numpy(images)).detach().numpy()
    out["versions"] = np.array(json.dumps({"torch": torch.__version__,
                                               "torchray": importlib.metadata.version("torchray")}))
    np.savez(args.outputs, **out)


if __name__ == "__main__":
    main()
