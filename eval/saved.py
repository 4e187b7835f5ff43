"""An exported explainer loaded back as an explainer: ``load_explainer(path)``.

Every ``export(path)`` of the project writes a SavedModel whose ``serving_default`` takes raw inputs
``x`` and returns ``{"scores", "mask"}`` (eval.protocol). ``SavedExplainer`` wraps one so that metrics,
suites and CLIs can score an explainer trained elsewhere (e.g. ``iba.explain --readout`` scores a
Readout exported by ``iba.train_readout``) exactly like a live one. The exported function explains the
class the model predicts (or, for the amortised explainers and the Readout, none), so ``targets`` are
accepted for the contract, checked for their count, and not used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from eval.protocol import as_inputs, check_batch_size


class SavedExplainer:
    """An exported explainer (see the module docstring): ``explain`` / ``select`` in batches."""

    requires_fit = False

    def __init__(self, path, *, batch_size: int = 64):
        path = Path(path)
        if not (path / "saved_model.pb").is_file():
            raise FileNotFoundError(f"path: {path} is not a SavedModel directory (no saved_model.pb); export an "
                                    "explainer with explainer.export(path) first")
        self.path = path
        self.batch_size = check_batch_size(batch_size, 64)
        self._serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        spec = self._serve.structured_input_signature[1]
        if set(spec) != {"x"} or not {"scores", "mask"} <= set(self._serve.structured_outputs):
            raise ValueError(f"path: {path} does not serve the explainer contract (x -> scores, mask); its "
                             f"signature takes {sorted(spec)} and returns {sorted(self._serve.structured_outputs)}")
        self._spec = spec["x"]

    def _run(self, x, key: str, batch_size) -> np.ndarray:
        x = as_inputs("x", x)
        expected = tuple(self._spec.shape[1:])
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"x: expected inputs of shape (N, {', '.join(map(str, expected))}) (the exported "
                             f"signature), got {x.shape}")
        size = check_batch_size(batch_size, self.batch_size)
        parts = [self._serve(x=tf.constant(x[i:i + size], self._spec.dtype))[key].numpy()
                 for i in range(0, len(x), size)]
        return np.concatenate(parts).astype(np.float32)

    def explain(self, x, targets=None, *, batch_size=None) -> np.ndarray:
        """The exported scores of ``x``; ``targets`` is checked and not used (module docstring)."""
        scores = self._run(x, "scores", batch_size)
        if targets is not None and np.ndim(targets) > 0 and len(np.asarray(targets)) != len(scores):
            raise ValueError(f"targets: expected one target per input ({len(scores)}), got {len(np.asarray(targets))}")
        return scores

    def select(self, x, k=None, *, batch_size=None) -> np.ndarray:
        """The exported top-k masks (k fixed at export time; ``k`` must be None)."""
        if k is not None:
            raise ValueError(f"k: an exported explainer selects the k it was exported with; got k={k!r} "
                             "(export again with export(path, k=...) for another k)")
        return self._run(x, "mask", batch_size)

    def get_config(self) -> dict:
        return {"method": "saved_model", "path": str(self.path)}


def load_explainer(path, *, batch_size: int = 64) -> SavedExplainer:
    """The SavedModel at ``path`` (written by an explainer's ``export``) as an explainer."""
    return SavedExplainer(path, batch_size=batch_size)
