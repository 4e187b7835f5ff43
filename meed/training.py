"""Training plumbing for MEED runs: a resumable data order, checkpoints, and TensorBoard monitors.

- ``epoch_batches``: epoch e's order is a stateless function of (seed, e), so a run resumed at epoch e
  sees exactly the batches an uninterrupted run would have seen. Partial last batches are dropped, as
  in the released code.
- ``Checkpointer`` / ``restore``: after each epoch the model's weights (the explainer, both
  approximators, both optimisers' slots, the noise generator's state and the epoch counter m) are
  written atomically with a small JSON state; ``--resume`` reloads them and continues from that epoch.
- ``FidelityMonitor``: FS-M / FU-M on the validation split at the original code's evaluation steps
  (100, 200, 500, 1000, 2000, 5000, ... and the last step), written to TensorBoard with example masks.
"""
from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from data.io import atomic_save, atomic_write
from eval.fidelity import model_fidelity


def training_subset(x: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """A seeded subset of ``n`` rows of ``x`` in their original order (``--train-samples``); None = all."""
    if n is None:
        return x
    return x[np.sort(np.random.default_rng(seed).permutation(len(x))[:n])]


def epoch_batches(x: np.ndarray, batch_size: int, seed: int, first_epoch: int, epochs: int) -> tf.data.Dataset:
    """Batches of x for epochs first_epoch .. epochs-1, each epoch in its own seeded order."""
    n = len(x)
    steps = n // batch_size
    if steps < 1:
        raise ValueError(f"batch_size: expected at most the number of training samples ({n}), got {batch_size}")
    data = tf.constant(x)

    def one_epoch(epoch):
        noise = tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        order = tf.reshape(tf.argsort(noise)[: steps * batch_size], [steps, batch_size])
        return tf.data.Dataset.from_tensor_slices(order).map(lambda rows: tf.gather(data, rows))

    return tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch).prefetch(2)


class Checkpointer(keras.callbacks.Callback):
    """Save the whole training state after every epoch (atomically) into ``directory``."""

    def __init__(self, directory):
        super().__init__()
        self.directory = Path(directory)

    def on_epoch_end(self, epoch, logs=None):
        atomic_save(self.directory / "latest.weights.h5", self.model.save_weights)
        state = {"epochs_done": epoch + 1, "logs": {k: float(v) for k, v in (logs or {}).items()}}
        atomic_write(self.directory / "state.json", json.dumps(state, indent=2))


def restore(model: keras.Model, directory) -> int:
    """Load the latest checkpoint in ``directory`` into ``model``; return the epochs already done."""
    directory = Path(directory)
    state_path, weights_path = directory / "state.json", directory / "latest.weights.h5"
    if not (state_path.exists() and weights_path.exists()):
        return 0
    model.load_weights(weights_path)
    return int(json.loads(state_path.read_text())["epochs_done"])


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
                kept = x * masks[: self.n_examples][..., None]
                tf.summary.image("validation/selected_features", _displayable(kept), max_outputs=self.n_examples)
        self.writer.flush()


def _displayable(images: np.ndarray) -> np.ndarray:
    low, high = float(images.min()), float(images.max())
    return (images - low) / (high - low) if high > low else np.zeros_like(images)
