"""MEED's TensorBoard monitor and evaluation steps (the shared plumbing -- seeded epoch batches,
checkpoints, exact resume -- is eval.training).

- ``FidelityMonitor``: FS-M / FU-M on the validation split at the original code's evaluation steps
  (100, 200, 500, 1000, 2000, 5000, ... and the last step), written to TensorBoard with example masks.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from eval.fidelity import model_fidelity
from eval.imputation import zero_impute


def evaluation_steps(last_step: int, first=(100, 200, 500)) -> list[int]:
    """The released code's evaluation steps: 100, 200, 500, 1000, 2000, 5000, ... and the last step."""
    steps, scale = [], 1
    while True:
        for base in first:
            if base * scale >= last_step:
                return sorted(set(steps + [last_step]))
            steps.append(base * scale)
        scale *= 10


class FidelityMonitor(keras.callbacks.Callback):
    """FS-M / FU-M of the current explainer on validation data at the given global steps."""

    def __init__(self, x_val: np.ndarray, steps, log_dir, n_examples: int = 8):
        super().__init__()
        self.x_val = x_val
        self.steps = set(int(s) for s in steps)
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "validation_steps"))
        self.n_examples = n_examples
        self.history: list[dict] = []

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.explainer_optimizer.iterations.numpy())
        if step in self.steps:
            self._evaluate(step)

    def _evaluate(self, step: int):
        masks = self.model.select(self.x_val)
        scores = model_fidelity(self.model.blackbox, self.x_val, masks)
        self.history.append({"step": step, **scores})
        with self.writer.as_default(step=step):
            for name, value in scores.items():
                tf.summary.scalar(f"validation/{name}", value)
            if self.model.modality in ("image", "patches"):
                x = self.x_val[: self.n_examples]
                kept = zero_impute(x, masks[: self.n_examples])
                tf.summary.image("validation/selected_features", _displayable(kept), max_outputs=self.n_examples)
        self.writer.flush()


def _displayable(images: np.ndarray) -> np.ndarray:
    low, high = float(images.min()), float(images.max())
    return (images - low) / (high - low) if high > low else np.zeros_like(images)
