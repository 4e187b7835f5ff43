"""Degradation MoRF / LeRF and the area between them (eval.degradation; IBA Section 4.6, eq. 9, Table 1)."""
import json

import keras
import numpy as np
import pytest

from eval import DegradationResult, degradation, plot_degradation
from kernels.perturb import perturb
from kernels.tiles import tile_grid
from tests import tiny

H, TILE = 16, 8  # 2 x 2 = 4 tiles


def one_tile_model():
    """Output 0 = mean of tile 0's pixels (linear, no softmax), output 1 = a small constant-weight sum."""
    kernel = np.zeros((H * H, 2), np.float32)
    kernel[:, 0] = (tile_grid(H, H, TILE).ravel() == 0) / float(TILE * TILE)
    kernel[:, 1] = 0.1 / (H * H)
    return tiny.fixed_dense((H, H, 1), kernel, softmax=False)


def bright_tile_images(n=3):
    x = np.zeros((n, H, H, 1), np.float32)
    x[:, :TILE, :TILE] = 1.0  # tile 0 is white, the rest black: per-image mean 0.25
    return x


def tile0_scores(n=3):
    scores = np.zeros((n, H, H), np.float32)
    scores[:, :TILE, :TILE] = 1.0
    return scores


def test_one_relevant_tile_known_answer():
    """Only tile 0 matters: MoRF drops to 0 at the first step, LeRF at the last; area = 1 - 1/T = 0.75."""
    model, x = one_tile_model(), bright_tile_images()
    result = degradation(model, x, tile0_scores(), targets=0, tile=TILE, batch_size=5)
    assert isinstance(result, DegradationResult)
    # t1 = p(original) = 1, b = p(every pixel at the image mean 0.25) = 0.25: s = (p - 0.25) / 0.75.
    assert result.t1 == pytest.approx(1.0) and result.b == pytest.approx(0.25)
    np.testing.assert_allclose(result.fractions, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(result.morf, [1, 0, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(result.lerf, [1, 1, 1, 1, 0], atol=1e-6)
    assert result.morf_per_sample.shape == result.lerf_per_sample.shape == (3, 5)
    # Trapezoid over [0, 1, 1, 1, 0] with step 0.25.
    assert result.area == pytest.approx(0.75, abs=1e-6)

    reversed_ = degradation(model, x, -tile0_scores(), targets=0, tile=TILE)
    assert reversed_.area == pytest.approx(-0.75, abs=1e-6)
    constant = degradation(model, x, np.ones((3, H, H)), targets=0, tile=TILE)
    assert constant.area == 0.0  # tied tiles are removed in the same order in both directions


def test_matches_a_one_by_one_loop_and_does_not_depend_on_batch_size():
    rng = np.random.default_rng(0)
    model = tiny.image_cnn((8, 8, 2))
    x = rng.random((2, 8, 8, 2), dtype=np.float32)
    scores = rng.random((2, 8, 8)).astype(np.float32)
    result = degradation(model, x, scores, tile=4, batch_size=3, normalization="none", output="logit")
    assert result.t1 == 1.0 and result.b == 0.0

    # Reference: every step of every image on its own, through kernels.perturb and the logits layer.
    logit_model = keras.Model(model.inputs, model.get_layer("logits").output)
    grid = tile_grid(8, 8, 4)
    for i in range(2):
        target = int(np.argmax(model.predict(x[i:i + 1], verbose=0)))
        tiles = np.array([scores[i][grid == t].mean() for t in range(4)])
        for order, curve in ((np.argsort(-tiles, kind="stable"), result.morf_per_sample[i]),
                             (np.argsort(tiles, kind="stable"), result.lerf_per_sample[i])):
            for k in range(5):
                keep = (~np.isin(grid, order[:k])).astype(np.float32)[None]
                image = perturb(x[i:i + 1], keep, "mean").numpy()
                expected = logit_model.predict(image, verbose=0)[0, target]
                assert curve[k] == pytest.approx(expected, abs=1e-4)

    again = degradation(model, x, scores, tile=4, batch_size=64, normalization="none", output="logit")
    np.testing.assert_allclose(again.morf_per_sample, result.morf_per_sample, atol=1e-5)
    np.testing.assert_allclose(again.lerf_per_sample, result.lerf_per_sample, atol=1e-5)


class ArrayExplainer:
    """An Explainer returning fixed scores; records the targets it was asked to explain."""

    def __init__(self, scores):
        self.scores, self.calls = scores, []

    def explain(self, x, targets=None, batch_size=None):
        self.calls.append(None if targets is None else np.asarray(targets).tolist())
        return self.scores


def test_dataset_normalisation_explainer_and_report():
    rng = np.random.default_rng(1)
    model = tiny.image_cnn((8, 8, 2))
    x = rng.random((3, 8, 8, 2), dtype=np.float32)
    scores = rng.normal(size=(3, 8, 8)).astype(np.float32)
    result = degradation(model, x, scores, tile=4)
    # eq. 9 with t1 and b averaged over the images: the mean curves start at 1 and end at 0.
    assert result.morf[0] == pytest.approx(1.0) and result.lerf[0] == pytest.approx(1.0)
    assert result.morf[-1] == pytest.approx(0.0, abs=1e-9) and result.lerf[-1] == pytest.approx(0.0, abs=1e-9)
    assert result.area == pytest.approx(np.trapezoid(result.lerf - result.morf, result.fractions))

    explainer = ArrayExplainer(scores)
    via_explainer = degradation(model, x, explainer, targets=[0, 1, 2], tile=4)
    assert explainer.calls == [[0, 1, 2]]
    assert via_explainer.area == pytest.approx(degradation(model, x, scores, targets=[0, 1, 2], tile=4).area)

    report = json.loads(json.dumps(result.to_dict()))
    assert report["n_tiles"] == 4 and report["n_images"] == 3 and report["baseline"] == "mean"
    assert len(report["morf"]) == len(report["fractions"]) == 5


def test_noise_baseline_is_seeded_and_figure(tmp_path):
    model, x = one_tile_model(), bright_tile_images(2)

    def run(seed):
        return degradation(model, x, tile0_scores(2), targets=0, tile=TILE, baseline="noise", baseline_value=0.3,
                           seed=seed, normalization="none").morf_per_sample

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.allclose(run(3), run(4))
    constant = degradation(model, x, tile0_scores(2), targets=0, tile=TILE, baseline="constant", baseline_value=0.5)
    assert constant.b == pytest.approx(0.5)
    path = plot_degradation(degradation(model, x, tile0_scores(2), targets=0, tile=TILE), tmp_path / "deg.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(scores=np.zeros((3, H, H - 1))), ValueError, r"scores: expected shape \(3, 16, 16\)"),
    (dict(scores=np.full((3, H, H), np.nan)), ValueError, r"scores: expected finite values"),
    (dict(tile=17), ValueError, r"tile: expected a tile size <= .* 16, got 17"),
    (dict(tile=16), ValueError, r"tile: expected at least 2 tiles"),
    (dict(tile=2.5), TypeError, r"tile: expected an integer"),
    (dict(baseline="median"), ValueError, r"baseline: unknown value 'median'"),
    (dict(output="prob"), ValueError, r"output: unknown value 'prob'; expected one of \['logit', 'probability'\]"),
    (dict(normalization="sample"), ValueError, r"normalization: unknown value 'sample'"),
    (dict(targets=[0, 5, 1]), ValueError, r"targets: expected labels in \[0, 1\]"),
    (dict(batch_size=0), ValueError, r"batch_size: expected an integer >= 1"),
    (dict(x=np.zeros((3, H * H))), ValueError, r"x: expected a non-empty batch of images \(N, H, W, C\)"),
])
def test_bad_inputs_raise_clear_errors(kwargs, error, match):
    args = dict(model=one_tile_model(), x=bright_tile_images(), scores=tile0_scores(), tile=TILE)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        degradation(**args)


def test_model_blind_to_the_baseline_cannot_be_normalised():
    x = np.full((2, H, H, 1), 0.5, np.float32)  # constant images: replacing by the mean changes nothing
    with pytest.raises(ValueError, match=r"normalisation .* undefined.*normalization='none'"):
        degradation(one_tile_model(), x, tile0_scores(2), targets=0, tile=TILE)
    raw = degradation(one_tile_model(), x, tile0_scores(2), targets=0, tile=TILE, normalization="none")
    np.testing.assert_allclose(raw.morf, 0.5, atol=1e-6)
    assert raw.area == pytest.approx(0.0, abs=1e-7)
