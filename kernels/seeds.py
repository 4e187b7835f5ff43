"""Seeds: stateless seeds, the one per-step seed of every training loop, replica-exact draws, and
reproducible construction without touching the caller's global random state.

- ``stateless_seed(seed)``: a user seed as the shape-(2,) int64 seed of TensorFlow's stateless ops.
- ``step_seed(seed, step, slot, slots)``: the seed of draw ``slot`` of training step ``step``,
  ``[seed, slots * step + slot]``. A function of the (checkpointed) optimiser step, so a resumed run
  draws exactly the noise an uninterrupted one would have drawn. MEED draws four times per step
  (slots=4), the amortised baselines and the Readout Bottleneck once.
- ``replica_draw(draw, shape, seed)``: a stateless draw whose rows are this replica's share of the
  draw a single device would make for the whole global batch, so that a ``tf.distribute`` step
  sees the same noise as a single-device step (eval.training states the loss convention).
- ``seeded(seed)``: a context in which Python's, NumPy's, TensorFlow's and Keras' global generators
  are seeded with ``seed`` (keras.utils.set_random_seed), restored to the caller's state on exit.
  Keras draws a layer's initial weights from Python's ``random`` when the layer is built, so building
  (and training) inside ``seeded(seed)`` gives the same weights as calling set_random_seed first, but
  a library call never reseeds the user's generators behind their back.
"""
from __future__ import annotations

import contextlib
import random
from typing import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf


def stateless_seed(seed, name: str = "seed"):
    """Seed of the stateless random ops, or None for fresh randomness at every call.

    ``seed`` may be None, a Python/numpy int ``s`` (read as the pair (s, 0)) or an integer array or tensor
    of shape (2,). Returns None or an int64 tensor of shape (2,): the same seed gives the same draws.
    """
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"{name}: expected None, an int or an integer array of shape (2,), got {seed!r}")
    if isinstance(seed, (int, np.integer)):
        return tf.constant([int(seed), 0], dtype=tf.int64)
    if not tf.is_tensor(seed):
        seed = np.asarray(seed)
    integer = seed.dtype.is_integer if tf.is_tensor(seed) else seed.dtype.kind in "iu"
    if not integer:
        raise TypeError(f"{name}: expected None, an int or an integer array of shape (2,), got {seed!r}")
    if tuple(seed.shape) != (2,):
        raise ValueError(f"{name}: expected an integer array of shape (2,), got shape {tuple(seed.shape)}")
    return tf.cast(seed, tf.int64)


def step_seed(seed, step, slot: int = 0, slots: int = 1):
    """The stateless seed ``[seed, slots * step + slot]`` (int64, shape (2,)) of one draw of a training step.

    ``step`` is the optimiser's iteration count (a variable, checkpointed with the weights), ``slot``
    in [0, slots) tells apart the draws of one step. Usable inside a traced train_step.
    """
    step = tf.cast(step, tf.int64)
    return tf.stack([tf.cast(seed, tf.int64), tf.constant(slots, tf.int64) * step + slot])


def _replica() -> tuple[int, object]:
    """(number of replicas in sync, this replica's index) in the current context; (1, 0) outside a strategy."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return 1, 0
    return context.num_replicas_in_sync, context.replica_id_in_sync_group


def replica_draw(draw: Callable, shape, seed):
    """``draw(shape, seed)`` (a stateless op such as tf.random.stateless_uniform) for this replica's rows.

    Under a strategy with R replicas the global batch is split evenly in order, replica r holding rows
    [r n, (r + 1) n) of it; the noise for all R n rows is drawn and replica r keeps its block, so every
    sample gets the value a single-device step on the whole batch gives it (stateless ops fix the value
    of every position for a seed and a shape). Outside a strategy this is ``draw(shape, seed)`` itself.
    Exactness needs the global batch to be divisible by R (Keras then splits it evenly).
    """
    count, index = _replica()
    if count == 1:
        return draw(shape, seed)
    shape = tf.convert_to_tensor(shape)
    rows = shape[0]
    full = draw(tf.concat([[rows * count], shape[1:]], axis=0), seed)
    return full[index * rows:(index + 1) * rows]


class _GlobalState:
    """The global random state that keras.utils.set_random_seed changes, captured for restoring."""

    def __init__(self):
        from keras.src.backend.common import global_state
        from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
        from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

        self._keras_attributes = (GLOBAL_RANDOM_SEED, GLOBAL_SEED_GENERATOR)
        self._global_state = global_state
        self.python = random.getstate()
        self.numpy = np.random.get_state()
        self.keras = [global_state.get_global_attribute(name) for name in self._keras_attributes]
        from tensorflow.python.eager import context

        self._context = context.context()
        self.tensorflow = (getattr(self._context, "_seed", None), getattr(self._context, "_rng", None))

    def restore(self):
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        for name, value in zip(self._keras_attributes, self.keras):
            self._global_state.set_global_attribute(name, value)
        if hasattr(self._context, "_seed"):
            self._context._seed, self._context._rng = self.tensorflow


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with every global generator seeded by ``seed``, then give the caller back theirs.

    Inside, ``keras.utils.set_random_seed(seed)`` is in effect: layers built there get the weights they
    get after that call, and tf.data shuffles with an op seed draw as they do under that global seed.
    On exit Python's, NumPy's, Keras' and TensorFlow's global state are restored, so a user's own random
    stream continues as if the block had not run.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    state = _GlobalState()
    keras.utils.set_random_seed(int(seed))
    try:
        yield
    finally:
        state.restore()
