"""Model probabilities on images whose highest-ranked pixels are kept (or removed): the engine of the masking
paper's base metric g_s (``eval.completeness``) and of deletion / insertion (``eval.insertion``).

Every query ("row") is one composite image: image i, the ranking q of its pixels (q indexes a table of
rankings: one per (image, label) map), a count k, a direction, a substrate image b (an index into a table
of substrates: one gray image, a pool of random images, or one blurred copy per image) and a class column:

- ``keep_top`` True: the k highest-ranked pixels of x are kept, the others come from b (T_k(m) x +
  (1 - T_k(m)) b: the base metric, insertion after k pixels);
- ``keep_top`` False: the k highest-ranked pixels are replaced by b (deletion after k pixels).

Rows are evaluated ``batch_size`` at a time, each chunk one call of a ``tf.function`` that builds the
composites from the rank table (``ranks < k``, all channels of a pixel together) with ``kernels.perturb.blend``
and runs the model on all of them at once: all levels k of a chunk of images go through one forward pass.
The score of a row is the model's probability of its class column; with ``columns`` (a class subset) the
softmax is restricted to those classes (the probabilities renormalised over them, exactly a softmax over
their logits: the released code's six-label wrapper).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from eval.progress import Progress
from kernels.hooks import check_model
from kernels.perturb import blend
from kernels.validation import check_int


def pixel_ranks(scores) -> np.ndarray:
    """The rank of every pixel of each map (M, *shape) -> int32 (M, *shape): 0 for the highest score.

    Ties: the lower flat (row-major) index ranks first (a stable sort of the negated scores), the rule of
    ``kernels.topk_mask``, so ``ranks < k`` is exactly the top-k mask of the map.
    """
    scores = np.asarray(scores, np.float64)
    flat = scores.reshape(len(scores), -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty(flat.shape, np.int32)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(flat.shape[1], dtype=np.int32), flat.shape), axis=1)
    return ranks.reshape(scores.shape)


def restrict(probabilities, columns):
    """Class probabilities (..., C) renormalised over the classes ``columns`` (None: unchanged): a softmax
    restricted to a subset of the labels (numpy or tensors)."""
    if columns is None:
        return probabilities
    if tf.is_tensor(probabilities):
        kept = tf.gather(probabilities, columns, axis=-1)
        return kept / tf.reduce_sum(kept, axis=-1, keepdims=True)
    kept = np.asarray(probabilities)[..., np.asarray(columns)]
    return kept / kept.sum(axis=-1, keepdims=True)


class RankedScorer:
    """Probabilities of composites built from pixel rankings (module docstring), batched.

    Args:
        model: a Keras classifier with one input and one output (class probabilities).
        x: images (N, H, W, C), float32.
        ranks: pixel rankings (Q, H, W), int (``pixel_ranks``).
        substrates: substrate images (K, H, W, C).
        columns: a class subset (softmax restricted to it) or None; row labels index its columns.
        batch_size: rows per model call (bounded memory; does not change the values).
    """

    def __init__(self, model, x, ranks, substrates, *, columns=None, batch_size: int = 256):
        self.model = check_model("model", model)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self._x = tf.constant(np.asarray(x, np.float32))
        self._ranks = tf.constant(np.asarray(ranks, np.int32))
        self._substrates = tf.constant(np.asarray(substrates, np.float32))
        self._columns = None if columns is None else tf.constant(np.asarray(columns, np.int32))
        spec = tf.TensorSpec([None], tf.int32)
        self._rows = tf.function(self._row_scores, input_signature=[spec, spec, spec, tf.TensorSpec([None], tf.bool),
                                                                    spec, spec])

    def _row_scores(self, image, rank, size, keep_top, substrate, label):
        ranks = tf.gather(self._ranks, rank)
        top = ranks < size[:, None, None]
        keep = tf.cast(tf.where(keep_top[:, None, None], top, ~top), tf.float32)
        composite = blend(tf.gather(self._x, image), keep, tf.gather(self._substrates, substrate))
        probabilities = restrict(self.model(composite, training=False), self._columns)
        return tf.gather(probabilities, label, axis=1, batch_dims=1)

    def run(self, image, rank, size, keep_top, substrate, label, *, verbose: int = 0) -> np.ndarray:
        """Probabilities (R,) float64 of the rows given as equal-length int arrays (``keep_top`` bool)."""
        columns = [np.asarray(a) for a in (image, rank, size, keep_top, substrate, label)]
        n_rows = len(columns[0])
        out = np.empty(n_rows, np.float64)
        progress = Progress(n_rows, verbose, "model call")
        for start in range(0, n_rows, self.batch_size):
            stop = min(n_rows, start + self.batch_size)
            part = [tf.constant(a[start:stop], tf.bool if i == 3 else tf.int32) for i, a in enumerate(columns)]
            out[start:stop] = self._rows(*part).numpy()
            progress.update(stop)
        return out
