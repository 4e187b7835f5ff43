"""Tests of kernels.image: Gaussian blur, total variation, resizing."""
import numpy as np
import pytest
from scipy import ndimage

from kernels import blur_matrix, blur_with_matrices, gaussian_blur, resize, total_variation, upsample_nearest
from tests import tiny


def test_blur_of_a_constant_image_is_the_constant():
    images = np.full((1, 8, 8, 2), 0.3, np.float32)
    np.testing.assert_allclose(gaussian_blur(images, 1.0).numpy(), images, atol=1e-6)


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0])
def test_blur_matches_scipy_mirror_mode(sigma):
    images = tiny.images(2, (9, 11, 3))
    # TF 'REFLECT' padding (edge not repeated) is scipy's 'mirror'; truncate=2 gives radius round(2 sigma).
    expected = ndimage.gaussian_filter(images.astype(np.float64), sigma=(0, sigma, sigma, 0),
                                       mode="mirror", truncate=2.0)
    np.testing.assert_allclose(gaussian_blur(images, sigma).numpy(), expected, atol=1e-5)


def test_blur_with_explicit_kernel_size_matches_scipy():
    images = tiny.images(2, (9, 11, 3))
    # kernel 7 = radius 3 = int(truncate * sigma + 0.5) with sigma 1 and truncate 3.
    expected = ndimage.gaussian_filter(images.astype(np.float64), sigma=(0, 1, 1, 0), mode="mirror",
                                       truncate=3.0)
    np.testing.assert_allclose(gaussian_blur(images, 1.0, kernel_size=7).numpy(), expected, atol=1e-5)


def test_blur_preserves_the_sum_of_an_interior_impulse():
    images = np.zeros((1, 15, 15, 1), np.float32)
    images[0, 7, 7, 0] = 1.0
    out = gaussian_blur(images, 1.0).numpy()
    assert out.sum() == pytest.approx(1.0, abs=1e-5)
    assert out[0, 7, 7, 0] == out.max() and out[0, 7, 5, 0] > 0 and out[0, 7, 4, 0] == 0


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_blur_on_large_maps_matches_scipy(sigma):
    # sigma 1 (5 taps): sides above 12 x 5 take the depthwise path; sigma 2.5 (11 taps): the matrices.
    images = tiny.images(1, (70, 64, 2))
    expected = ndimage.gaussian_filter(images.astype(np.float64), sigma=(0, sigma, sigma, 0), mode="mirror",
                                       truncate=2.0)
    np.testing.assert_allclose(gaussian_blur(images, sigma).numpy(), expected, atol=1e-5)


def test_blur_matrices_sum_rows_to_one_and_their_transposes_are_the_adjoint():
    rows, columns = blur_matrix(9, 1.0), blur_matrix(11, 1.0)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-6)
    x, y = tiny.images(2, (9, 11, 3), seed=1), tiny.images(2, (9, 11, 3), seed=2)
    blurred = blur_with_matrices(x, rows, columns).numpy()
    np.testing.assert_allclose(blurred, gaussian_blur(x, 1.0).numpy(), atol=1e-6)
    adjoint = blur_with_matrices(y, rows.T, columns.T).numpy()
    assert float((blurred * y).sum()) == pytest.approx(float((x * adjoint).sum()), rel=1e-5)
    with pytest.raises(ValueError, match="kernel_size"):
        blur_matrix(2, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        blur_matrix(9, 0.0)
    with pytest.raises(ValueError, match="kernel_size: expected an odd int"):
        blur_matrix(9, 1.0, kernel_size=4)
    with pytest.raises(ValueError, match="size: expected an int >= 1"):
        blur_matrix(0, 1.0)
    with pytest.raises(ValueError, match=r"columns: expected a \(11, 11\) matrix"):
        blur_with_matrices(x, rows, rows)
    with pytest.raises(ValueError, match="images: expected shape"):
        blur_with_matrices(x[0], rows, columns)


def test_blur_sigma_zero_returns_the_input():
    images = tiny.images(2, (9, 11, 3))
    np.testing.assert_array_equal(gaussian_blur(images, 0.0).numpy(), images)


def test_blur_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(tiny.images(2, (9, 11, 3)), -1.0)
    with pytest.raises(ValueError, match="kernel_size"):
        gaussian_blur(tiny.images(2, (9, 11, 3)), 1.0, kernel_size=4)
    with pytest.raises(ValueError, match="kernel_size"):
        gaussian_blur(tiny.images(2, (9, 11, 3)), 5.0)
    with pytest.raises(ValueError, match="images"):
        gaussian_blur(np.zeros((4, 4, 3)), 1.0)


def test_total_variation_of_a_constant_is_zero():
    np.testing.assert_array_equal(total_variation(np.full((2, 5, 5), 0.4)).numpy(), [0.0, 0.0])


def test_total_variation_hand_computed():
    m = np.array([[[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.5, 0.0]]], np.float32)
    # i, j < 2 only: (0,0): (0-1)^2 + (0-1)^2 = 2; (0,1): (1-1)^2 + (1-0)^2 = 1;
    # (1,0): (1-0)^2 + (1-1)^2 = 1; (1,1): (1-0.5)^2 + (1-1)^2 = 0.25.
    assert total_variation(m).numpy()[0] == pytest.approx(4.25)
    assert total_variation(m[..., None]).numpy()[0] == pytest.approx(4.25)


def test_total_variation_rejects_channels_and_wrong_rank():
    with pytest.raises(ValueError, match="masks"):
        total_variation(np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="masks"):
        total_variation(np.zeros((4, 4)))


def test_resize_keeps_the_rank_and_nearest_upsampling_repeats():
    small = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    assert resize(small, (4, 6)).shape == (1, 4, 6)
    assert resize(small[..., None], (4, 6), method="nearest").shape == (1, 4, 6, 1)
    expected = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(resize(small, (4, 6), method="nearest").numpy(), expected)
    np.testing.assert_array_equal(upsample_nearest(small, 2).numpy(), expected)
    assert upsample_nearest(np.zeros((2, 3, 3, 4)), 4).shape == (2, 12, 12, 4)


def test_resize_bilinear_of_a_constant_is_the_constant():
    np.testing.assert_allclose(resize(np.full((1, 3, 3, 2), 2.0), (7, 5)).numpy(), 2.0)


def test_resize_and_upsample_reject_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        resize(np.zeros((1, 3, 3)), (4, 4), method="bicubicc")
    with pytest.raises(ValueError, match="size"):
        resize(np.zeros((1, 3, 3)), (4, 0))
    with pytest.raises(ValueError, match="images"):
        resize(np.zeros((3, 3)), (4, 4))
    with pytest.raises(ValueError, match="factor"):
        upsample_nearest(np.zeros((1, 3, 3)), 0)
