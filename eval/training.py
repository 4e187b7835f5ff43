"""Training plumbing shared by every trainable explainer: data subsets, a resumable seeded data order,
checkpoints with exact resume, and the loss convention under tf.distribute.

- ``subset(x, n, seed)``: the ``--train-samples`` rule of every CLI: n rows drawn with ``seed``, kept in
  their original order (None: all).
- ``epoch_batches(arrays, batch_size, seed, first_epoch, epochs)``: epoch e's order is a stateless
  function of (seed, e), so a run resumed at epoch e sees exactly the batches an uninterrupted run would
  have seen. Partial last batches are dropped (as MEED's released code does), which also keeps every
  global batch divisible by the replicas of a strategy.
- ``Checkpointer`` / ``restore``: after each epoch the model's whole state (weights, the optimisers'
  slots and step counters, non-trainable variables such as MEED's epoch counter or IBA's statistics) is
  written atomically with a small JSON state; ``restore`` loads it and tells how many epochs are done.
  With the seeded order and step seeds (kernels.seeds.step_seed), resuming reproduces an uninterrupted run.
- ``replica_mean(loss)``: THE loss convention of every custom ``train_step``: each replica computes the
  mean loss of its share of the global batch and returns ``replica_mean(loss)`` = loss / replicas to
  the gradient; the optimiser sums the replicas' gradients (Keras 3 on TensorFlow), so the update is the
  gradient of the mean over the whole global batch, as on one device. Together with replica-exact noise
  (kernels.seeds.replica_draw), a MirroredStrategy step equals a single-device step for losses that are
  means over samples (tests/test_distribute.py). Batch statistics are the exception: a sliced
  Wasserstein distance between two batches, or BatchNormalization in training mode, is computed per
  replica on its share.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from data.io import atomic_save, atomic_write
from kernels.validation import check_int


def subset(x, n: int | None, seed: int):
    """``n`` rows of ``x`` (an array, or a tuple of arrays with the same first axis) drawn with ``seed``,
    in their original order; ``n=None`` (or n >= len) keeps everything."""
    arrays = x if isinstance(x, tuple) else (x,)
    total = len(arrays[0])
    if n is None or n >= total:
        return x
    rows = np.sort(np.random.default_rng(seed).permutation(total)[:check_int("n", n, minimum=1)])
    picked = tuple(a[rows] for a in arrays)
    return picked if isinstance(x, tuple) else picked[0]


def epoch_batches(arrays, batch_size: int, seed: int, first_epoch: int, epochs: int) -> tf.data.Dataset:
    """Batches of ``arrays`` (an array or a tuple of arrays) for epochs first_epoch .. epochs-1, each epoch
    in its own seeded order (see the module docstring)."""
    items = arrays if isinstance(arrays, tuple) else (arrays,)
    n = len(items[0])
    steps = n // batch_size
    if steps < 1:
        raise ValueError(f"batch_size: expected at most the number of training samples ({n}), got {batch_size}")
    data = tuple(tf.constant(a) for a in items)

    def one_epoch(epoch):
        noise = tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        order = tf.reshape(tf.argsort(noise)[: steps * batch_size], [steps, batch_size])

        def gather(rows):
            picked = tuple(tf.gather(d, rows) for d in data)
            return picked if isinstance(arrays, tuple) else picked[0]

        return tf.data.Dataset.from_tensor_slices(order).map(gather)

    return tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch).prefetch(2)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches per epoch of ``epoch_batches`` (partial last batches are dropped)."""
    return n // batch_size


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
    """Load the latest checkpoint in ``directory`` into ``model``; return the epochs already done (0: none)."""
    directory = Path(directory)
    state_path, weights_path = directory / "state.json", directory / "latest.weights.h5"
    if not (state_path.exists() and weights_path.exists()):
        return 0
    model.load_weights(weights_path)
    return int(json.loads(state_path.read_text())["epochs_done"])


def replica_mean(loss):
    """The share of one replica's mean loss in the global mean: loss / replicas in sync (module docstring)."""
    return loss / tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, loss.dtype)


def strategy_scope(name: str):
    """The scope of the tf.distribute strategy ``name`` ("default", "mirrored", "multiworker")."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy().scope()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy().scope()
    if name != "default":
        raise ValueError(f"strategy: unknown value {name!r}; expected one of ['default', 'mirrored', 'multiworker']")
    return contextlib.nullcontext()
