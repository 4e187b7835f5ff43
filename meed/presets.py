"""Every setting of the MEED paper, with the released code's architectures and hyper-parameters.

Sources: paper Section 4.0.3 and Appendix B; reference/meed_original_code.md ("Datasets and settings").
``Legacy`` lists the quirks of the released code; ``Legacy.of(preset)`` switches on exactly those that
the preset's original script had, so ``--legacy`` reproduces the released code's behaviour.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import keras

from eval.papers import MEED_CLASSES
from kernels.validation import check_choice


@dataclass(frozen=True)
class Legacy:
    """Reproduce a quirk of the released MEED code (all False = the paper's intent). docs/FIDELITY.md."""

    #: image scripts: the "mask" is the max over draws of the noisy logits / tau (softmax overwritten).
    sampling_bug: bool = False
    #: all scripts: the GI prior is normalised as log softmax(-scores), favouring unimportant features.
    prior_sign: bool = False
    #: image scripts: m fixed at 1 instead of the epoch number in eq. 12-13.
    fixed_m: bool = False
    #: IMDB script: the prior is disabled (identity merge).
    no_prior: bool = False
    #: evaluation: SEN keeps only the last perturbation (running max reset) and reuses the clean y.
    sen_reset: bool = False
    #: evaluation: TPS times the black box's prediction instead of the explainer.
    tps_blackbox: bool = False

    @classmethod
    def of(cls, preset: "Preset") -> "Legacy":
        """The quirks of the original script of ``preset``'s setting."""
        image = preset.modality == "image"
        return cls(sampling_bug=image, prior_sign=image, fixed_m=image, no_prior=preset.modality == "text",
                   sen_reset=True, tps_blackbox=True)

    def enabled(self) -> list[str]:
        return [name for name, value in self.__dict__.items() if value]


@dataclass(frozen=True)
class Preset:
    """One setting of the paper: data, sizes, losses, optimiser and schedule."""

    name: str
    dataset: str
    modality: str  # image | text | patches | sequence | tabular
    k: float  # features to select (an int), or a share of them (0 < k < 1)
    adversarial: str  # "ce": cross-entropy to the flipped target 1 - y; "swd": sliced Wasserstein
    lu_weight: float
    optimizer: str  # adadelta | rmsprop | adam | adam_tgd
    batch_size: int
    epochs: int
    classes: tuple | None = None
    n_projections: int = 128
    tau: float = 0.5
    le_weight: float = 0.0
    patch: int = 1
    eval_epochs: int = 12
    eval_batch_size: int = 32
    evaluation_steps: tuple = field(default=(100, 200, 500, 1000, 2000, 5000))

    def make_optimizer(self) -> keras.optimizers.Optimizer:
        """A fresh optimiser of this setting (the paper: 'default hyper-parameters', fixed rates)."""
        if self.optimizer == "adadelta":  # Keras 2's default rate was 1.0 (Keras 3: 0.001)
            return keras.optimizers.Adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-7)
        if self.optimizer == "rmsprop":
            return keras.optimizers.RMSprop(learning_rate=1e-3, rho=0.9, epsilon=1e-7)
        if self.optimizer == "adam":
            return keras.optimizers.Adam(learning_rate=1e-3)
        # TGD (Appendix B): Adam 2e-4, beta1 .5, beta2 .999, learning rate x0.7 every 50,000 steps.
        schedule = keras.optimizers.schedules.ExponentialDecay(2e-4, 50_000, 0.7, staircase=True)
        return keras.optimizers.Adam(learning_rate=schedule, beta_1=0.5, beta_2=0.999)

    def n_selected(self, n_features: int) -> int:
        """k as a number of features (a share k in (0, 1) is floored, as the ImageNet script's 313)."""
        return int(self.k * n_features) if 0 < self.k < 1 else int(self.k)


PRESETS: dict[str, Preset] = {
    "fashion_mnist": Preset("fashion_mnist", "fashion_mnist", "image", k=64, adversarial="ce", lu_weight=1e-3,
                            optimizer="adadelta", batch_size=128, epochs=12, classes=MEED_CLASSES["fashion_mnist"]),
    "fashion_mnist_swd": Preset("fashion_mnist_swd", "fashion_mnist", "image", k=64, adversarial="swd",
                                lu_weight=1.0, n_projections=128, optimizer="adadelta", batch_size=128,
                                epochs=12, classes=MEED_CLASSES["fashion_mnist"]),
    "mnist": Preset("mnist", "mnist", "image", k=25, adversarial="ce", lu_weight=1e-3, optimizer="adadelta",
                    batch_size=128, epochs=12, classes=MEED_CLASSES["mnist"]),
    "imdb": Preset("imdb", "imdb", "text", k=10, adversarial="ce", lu_weight=1.0, optimizer="rmsprop",
                   batch_size=32, epochs=20, eval_epochs=5),
    "imagenet": Preset("imagenet", "imagenet", "patches", k=0.1, adversarial="swd", lu_weight=1.0,
                       n_projections=256, optimizer="adadelta", batch_size=32, epochs=50, le_weight=1e-3,
                       patch=4),
    "timeseries": Preset("timeseries", "timeseries", "sequence", k=0.1, adversarial="ce", lu_weight=1.0,
                         optimizer="adam_tgd", batch_size=1024, epochs=20),
}

# Ground-truth settings (not in the paper): the truly relevant features are known, so the share of them
# that MEED selects is measurable. k = the number of relevant features per sample (L2X's choice).
_GROUND_TRUTH_K = {"xor": 2, "orange_skin": 4, "nonlinear_additive": 4, "switch": 5}
PRESETS.update({
    task: Preset(task, task, "tabular", k=k, adversarial="ce", lu_weight=1.0, optimizer="adam", batch_size=100,
                 epochs=5, eval_epochs=5)
    for task, k in _GROUND_TRUTH_K.items()
})
PRESETS["planted_text"] = Preset("planted_text", "planted_text", "text", k=10, adversarial="ce", lu_weight=1.0,
                                 optimizer="rmsprop", batch_size=32, epochs=3, eval_epochs=2)

ABLATIONS = {"no-output": "use_output", "no-ail": "use_ail", "no-prior": "use_prior"}


def get(name: str, **overrides) -> Preset:
    """The preset called ``name`` (ValueError listing the known ones otherwise), with overrides."""
    return replace(PRESETS[check_choice("preset", name, PRESETS)], **overrides)
