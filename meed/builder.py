"""Assemble a ``MEED`` model for a preset: explainer and approximators of the setting, the paper's
losses and weights, the ablation switches and the legacy flags. ``explainer`` is the registry's
factory of "meed" (meed.methods)."""
from __future__ import annotations

import numpy as np

from baselines import networks
from data.models import lstm_classifier, mnist_cnn, mobilenet_classifier, tabular_mlp
from kernels.seeds import seeded
from kernels.validation import check_choice, check_int
from meed import presets as presets_module
from meed.model import MEED
from meed.presets import ABLATIONS, Legacy, Preset


def _networks(preset: Preset, input_shape, n_classes: int, weights=None):
    """(explainer, A_s, A_u) of the preset's setting (reference/meed_original_code.md, "Architectures")."""
    if preset.modality == "text":
        make = lambda name: networks.text_approximator(input_shape, n_classes, name=name)  # noqa: E731
        return networks.text_explainer(input_shape, n_classes), make("approximator_s"), make("approximator_u")
    if preset.modality == "image":
        explainer = networks.image_explainer(input_shape, n_classes)
        trunk, mask_shape = (lambda: mnist_cnn(input_shape, n_classes)), tuple(input_shape[:2])
    elif preset.modality == "patches":
        explainer = networks.unet_explainer(input_shape, n_classes, patch=preset.patch)
        trunk = lambda: mobilenet_classifier(input_shape, n_classes, weights=weights)  # noqa: E731
        mask_shape = explainer.output_shape[1:]
    elif preset.modality == "tabular":
        explainer = networks.tabular_explainer(input_shape, n_classes)
        trunk, mask_shape = (lambda: tabular_mlp(input_shape, n_classes)), tuple(input_shape)
    else:
        explainer = networks.sequence_explainer(input_shape, n_classes)
        trunk, mask_shape = (lambda: lstm_classifier(input_shape, n_classes)), tuple(input_shape)
    approximators = [networks.masked_approximator(trunk(), mask_shape, patch=preset.patch, name=name)
                     for name in ("approximator_s", "approximator_u")]
    return (explainer, *approximators)


def build(preset: Preset | str, blackbox, *, legacy: bool | Legacy = False, ablation: str | None = None,
          seed: int = 0, backbone_weights=None) -> MEED:
    """A compiled ``MEED`` for ``blackbox`` with the preset's architectures, losses and optimisers.

    ``preset`` is a ``Preset`` or the name of one (``meed.PRESETS``). ``legacy=True`` switches on every
    quirk of the preset's original script (``Legacy.of``); a ``Legacy`` instance picks individual flags.
    ``ablation`` is one of "no-output", "no-ail", "no-prior" (the paper's Table 2). The networks are
    built inside ``kernels.seeds.seeded(seed)``: their initial weights are a function of the seed and the
    caller's global random state is left as it was.
    """
    if isinstance(preset, str):
        preset = presets_module.get(preset)
    if not isinstance(preset, Preset):
        raise TypeError(f"preset: expected a meed.Preset or a preset name, got {type(preset).__name__}")
    seed = check_int("seed", seed, minimum=0)
    input_shape = tuple(int(s) for s in blackbox.input_shape[1:])
    n_classes = int(blackbox.output_shape[-1])
    flags = legacy if isinstance(legacy, Legacy) else (Legacy.of(preset) if legacy else Legacy())
    switches = {"use_output": True, "use_ail": True, "use_prior": True}
    if ablation is not None:
        switches[ABLATIONS[check_choice("ablation", ablation, ABLATIONS)]] = False
    with seeded(seed):
        explainer, approximator_s, approximator_u = _networks(preset, input_shape, n_classes, backbone_weights)
    n_features = int(np.prod(explainer.output_shape[1:]))
    model = MEED(blackbox, explainer, approximator_s, approximator_u, k=preset.n_selected(n_features),
                 modality=preset.modality, adversarial=preset.adversarial, lu_weight=preset.lu_weight,
                 n_projections=preset.n_projections, le_weight=preset.le_weight, tau=preset.tau,
                 patch=preset.patch, legacy=flags, seed=seed, name=f"meed_{preset.name}", **switches)
    model.compile(approximator_optimizer=preset.make_optimizer(), explainer_optimizer=preset.make_optimizer())
    model.preset, model.ablation = preset, ablation
    return model


def explainer(model, *, preset: str | None = None, dataset: str | None = None, k: int | None = None, seed: int = 0,
              legacy: bool = False, ablation: str | None = None) -> MEED:
    """MEED (Liang et al., KDD 2020): an amortised explainer trained by adversarial infidelity learning.

    The registry's factory of "meed": a compiled MEED for the black box ``model``, to ``fit(x_train)``.

    Args:
        preset: a name of ``meed.PRESETS`` (its networks, losses, optimisers, epochs and batch size);
            default: the preset named after ``dataset``.
        dataset: the dataset being explained (the benchmark passes its name) when no preset is given.
        k: features to select (default: the preset's).
        seed: initial weights, the Gumbel / SWD noise and the order of the training batches.
        legacy: reproduce the released code's quirks (``meed.Legacy.of(preset)``).
        ablation: "no-output", "no-ail" or "no-prior" (the paper's Table 2).
    """
    if preset is None:
        if dataset is None:
            raise ValueError(f"preset: expected one of {sorted(presets_module.PRESETS)} (or a dataset with a preset), "
                             f"got None")
        preset = dataset
    overrides = {} if k is None else {"k": check_int("k", k, minimum=1)}
    return build(presets_module.get(preset, **overrides), model, legacy=legacy, ablation=ablation, seed=seed)
