"""Extremal perturbations: known answers of the smooth mask, the pyramid and the area loss; on a model that
reads only a known square, every variant finds it at the requested area; errors for bad arguments."""
import numpy as np
import pytest
import tensorflow as tf

from baselines.extremal import (ExtremalPerturbation, SmoothMask, pyramid_matrices, ranking_loss,
                                reference_vector)
from tests import tiny

SIZE, SQUARE = 16, (slice(5, 11), slice(5, 11))  # a 6 x 6 square, symmetric under horizontal flips
AREA = 36 / SIZE ** 2


def square_task():
    """A model that reads only the square: logit 0 = sum of x over it, logit 1 = 0; an image bright on the
    square, black elsewhere. Blurring (max_blur 4 px, BLUR) moves the square's mass out of it, so what the
    model needs is exactly the square; model and image are invariant under EP's horizontal flips (jitter).
    """
    kernel = np.zeros((SIZE, SIZE, 2), np.float32)
    kernel[SQUARE[0], SQUARE[1], 0] = 1.0
    model = tiny.fixed_dense((SIZE, SIZE, 1), kernel.reshape(-1, 2))
    image = np.zeros((1, SIZE, SIZE, 1), np.float32)
    image[0, SQUARE[0], SQUARE[1], 0] = 1.0
    return model, image


#: A blur that reaches the square's centre and a mask finer than the square (the defaults scale to 16 px).
BLUR = {"max_blur": 4.0, "sigma": 2.0}


def test_the_smooth_mask_has_torchrays_geometry_and_a_flat_top():
    generator = SmoothMask((224, 224), 7, 21.0)
    assert generator.grid == (32, 32) and generator.padded_shape == (260, 260) and generator.crop == 21
    generator = SmoothMask((SIZE, SIZE), 2, 6.0)
    params = np.zeros((1, *generator.grid), np.float32)
    params[0, 3, 4] = 1.0  # cell (3, 4) sits at image pixel (6, 8)
    cropped, padded = (m.numpy() for m in generator(tf.constant(params)))
    assert cropped.shape == (1, SIZE, SIZE) and padded.shape == (1, *generator.padded_shape)
    assert padded.min() >= 0.0 and padded.max() <= 1.0
    rows, columns = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    distance = np.hypot(rows - 6, columns - 8)
    np.testing.assert_allclose(cropped[0][distance <= 3.0 - 1e-6], 1.0, atol=1e-6)  # flat out to sigma / 2
    assert np.all(cropped[0][distance > 3.0 + 1e-6] < 1.0)
    assert cropped[0][distance > 12].max() < 1e-3  # exp(-2 (z - 1/2)^2) at z = 2: 0.011, then pooled
    ones, _ = generator(tf.ones((1, *generator.grid)))
    assert ones.numpy().min() > 0.9  # everything kept at the start


def test_the_pyramid_interpolates_between_levels():
    model, _ = square_task()
    ep = ExtremalPerturbation(model, max_blur=2.0, verbose=0)
    x = tf.constant(tiny.images(2, (SIZE, SIZE, 1), seed=3))
    pyramid = ep.pyramid(x)
    assert pyramid.shape == (2, 8, SIZE, SIZE, 1)
    np.testing.assert_allclose(pyramid[:, -1], x, atol=1e-6)  # level L - 1 is the input
    shape = (2, 1, SIZE, SIZE)
    np.testing.assert_allclose(ep.perturbed(pyramid, tf.ones(shape))[:, 0], x, atol=1e-6)
    np.testing.assert_allclose(ep.perturbed(pyramid, tf.zeros(shape))[:, 0], pyramid[:, 0], atol=1e-6)
    np.testing.assert_allclose(ep.perturbed(pyramid, tf.fill(shape, 0.5))[:, 0],
                               (pyramid[:, 3] + pyramid[:, 4]) / 2, atol=1e-6)
    matrices = pyramid_matrices(SIZE, 1.0, 8)  # level 0: sigma 1, half-width ceil(4 sigma) = 4
    center = matrices[0][SIZE // 2]
    assert center.sum() == pytest.approx(1.0, abs=1e-5)  # a full kernel inside the image sums to 1
    assert matrices[0][0].sum() < 0.9  # zero padding: a border row loses the taps outside


def test_the_area_loss_is_zero_at_the_requested_area_and_one_minus_a_for_all_ones():
    n, area = 200, 0.1
    reference = reference_vector(n, area)
    binary = np.zeros(n, np.float32)
    binary[np.random.default_rng(0).choice(n, int(round(n * area)), replace=False)] = 1
    assert ranking_loss(tf.constant(binary[None]), reference[None]).numpy()[0] == 0.0
    assert ranking_loss(tf.ones((1, n)), reference[None]).numpy()[0] == pytest.approx(1 - area)


@pytest.mark.parametrize("variant", ["preserve", "delete", "dual"])
def test_every_variant_finds_the_square_the_model_reads_at_its_area(variant):
    model, image = square_task()
    ep = ExtremalPerturbation(model, areas=AREA, variant=variant, steps=300, verbose=0, **BLUR)
    mask = ep.area_masks(image, [0])[0, 0]
    inside = np.zeros((SIZE, SIZE), bool)
    inside[SQUARE] = True
    near = np.zeros((SIZE, SIZE), bool)  # the square and 2 pixels around it: the smooth mask's edge
    near[SQUARE[0].start - 2:SQUARE[0].stop + 2, SQUARE[1].start - 2:SQUARE[1].stop + 2] = True
    found = mask > 0.5
    assert (found & inside).sum() / inside.sum() > 0.9, variant  # covers the square
    assert not np.any(found & ~near), variant  # and nothing away from it
    assert mask[inside].mean() > 3 * mask[~inside].mean(), variant


def test_the_area_of_the_padded_mask_matches_the_request():
    model, image = square_task()
    for area in (0.05, 0.2):
        ep = ExtremalPerturbation(model, areas=area, steps=400, verbose=0, **BLUR)
        mask = ep.area_masks(image, [0])
        # The area counts on the padded canvas (TorchRay's convention); the mask sits on the square, away
        # from the borders, so its margin holds ~0 and the count inside the image is the padded count.
        padded_area = (mask > 0.5).sum() / np.prod(ep.generator.padded_shape)
        assert padded_area == pytest.approx(area, abs=0.03), area


def test_several_areas_are_optimised_together_and_scores_are_their_sum():
    model, image = square_task()
    x = np.concatenate([image, tiny.images(2, (SIZE, SIZE, 1), seed=1)])
    ep = ExtremalPerturbation(model, areas=[0.05, 0.2], steps=40, verbose=0)
    masks = ep.area_masks(x, [0, 0, 1])
    assert masks.shape == (3, 2, SIZE, SIZE)
    assert masks[0, 1].sum() > masks[0, 0].sum()  # the larger area keeps more
    np.testing.assert_allclose(ep.explain(x, [0, 0, 1]), masks.sum(axis=1), atol=1e-6)
    single = ExtremalPerturbation(model, areas=0.2, steps=40, verbose=0).area_masks(x, [0, 0, 1])
    np.testing.assert_allclose(single[:, 0], masks[:, 1], atol=1e-5)  # areas do not interact
    one_by_one = np.concatenate([ep.area_masks(x[i:i + 1], [t]) for i, t in enumerate([0, 0, 1])])
    np.testing.assert_allclose(one_by_one, masks, atol=1e-5)


def test_contrastive_reward_and_smoothing():
    model, image = square_task()
    plain = ExtremalPerturbation(model, steps=30, verbose=0).explain(image, [0])
    smooth = ExtremalPerturbation(model, steps=30, smooth=0.1, verbose=0).explain(image, [0])
    assert smooth.max() < plain.max() and np.abs(smooth - plain).max() > 1e-3
    # two classes: the contrastive reward (logit 0 - logit 1) equals the simple one since logit 1 = 0
    contrastive = ExtremalPerturbation(model, steps=30, reward="contrastive", verbose=0).explain(image, [0])
    np.testing.assert_allclose(contrastive, plain, atol=1e-6)


@pytest.mark.parametrize("hyper, name", [
    ({"areas": 0.0}, "areas"), ({"areas": 1.0}, "areas"), ({"areas": []}, "areas"), ({"areas": "big"}, "areas"),
    ({"variant": "both"}, "variant"), ({"reward": "max"}, "reward"), ({"steps": 0}, "steps"),
    ({"step": SIZE + 1}, "step"), ({"sigma": -1.0}, "sigma"), ({"max_blur": 0.0}, "max_blur"),
    ({"levels": 1}, "levels"), ({"smooth": -0.1}, "smooth"),
])
def test_bad_arguments_are_errors_naming_them(hyper, name):
    model, _ = square_task()
    with pytest.raises(ValueError, match=f"^{name}:"):
        ExtremalPerturbation(model, **hyper)
    with pytest.raises(TypeError, match="^jitter:"):
        ExtremalPerturbation(model, jitter="yes")


def test_non_image_models_are_rejected():
    with pytest.raises(ValueError, match="^model: extremal perturbations need an image model"):
        ExtremalPerturbation(tiny.tabular_mlp())
