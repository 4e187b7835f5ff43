"""The masking suite (eval.suites.MaskingSuite) through the harness: every column filled for a registered
method, ours fitted on its distractor pool. Skipped until the suite is wired into eval.suites."""
import numpy as np
import pytest

import eval.suites as suites
from eval import harness
from tests import tiny

pytestmark = pytest.mark.skipif(not hasattr(suites, "MaskingSuite"), reason="MaskingSuite is not in eval.suites yet")


def test_the_suite_scores_ours_and_the_random_control_on_every_column():
    model = tiny.image_cnn()
    x, pool, holdout = tiny.images(3, (8, 8, 3), seed=1), tiny.images(8, (8, 8, 3), seed=2), tiny.images(
        2, (8, 8, 3), seed=3)
    suite = suites.MaskingSuite(model, x, pool=pool, n_random=2, holdout=holdout)
    candidates = [harness.registry_candidate("masking", hyper={"steps": 3, "distractors": 2, "verbose": 0},
                                             fit_args=(pool,)),
                  harness.registry_candidate("random")]
    for evaluation in harness.evaluate(suite, candidates):
        assert set(evaluation.metrics) == set(suite.columns()), evaluation.label
        assert all(np.isfinite(v) for v in evaluation.metrics.values()), evaluation.metrics
        assert evaluation.outputs["maps"].shape == (3, 2, 8, 8)
        assert 0 <= evaluation.metrics["completeness (gray)"] <= 1 and 0 <= evaluation.metrics["soundness (gray)"] <= 1
