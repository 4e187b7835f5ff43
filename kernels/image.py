"""Image ops shared by the packages: Gaussian blur, total variation, resizing.

- Gaussian blur: IBA's smoothing of the bottleneck mask (eq. 7, sigma_s = 1) and the blurred-image
  baselines of VP and the insertion metric.
- Total variation: the smoothness penalty of the masking paper's objective (eq. 6).
- Resize / nearest upsampling: mask and heatmap resolution changes (IBA, VP, MEED's ImageNet grid).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from kernels.validation import as_float_tensor, check_choice, check_positive


def gaussian_blur(images, sigma, *, kernel_size=None):
    """Blur each channel of ``images`` (N, H, W, C) with a separable, normalised Gaussian.

    ``kernel_size`` defaults to 2 * round(2 * sigma) + 1 (Python's round, half to even), the IBA
    package's choice (5 for sigma = 1). Borders use reflect padding without repeating the edge pixel
    (TF 'REFLECT' = numpy 'reflect' = scipy.ndimage mode 'mirror' = PyTorch ReflectionPad2d, IBA's
    padding), which needs kernel_size // 2 < H and < W. ``sigma == 0`` returns the input unchanged.

    Two equal computations, chosen by size: on small maps (side <= 12 x kernel_size: IBA's bottlenecks,
    28 px images) two matrix products with :func:`blur_matrix` (3-4x faster on CPU, forward and
    backward); on large ones two depthwise convolutions (their cost grows with the kernel, not the side).
    """
    images = as_float_tensor("images", images, rank=4)
    kernel_size = _kernel_size(sigma, kernel_size)
    if sigma == 0:
        return images
    radius = int(kernel_size) // 2
    height, width = images.shape[1], images.shape[2]
    if any(side is not None and radius >= side for side in (height, width)):
        raise ValueError(
            f"kernel_size: reflect padding needs kernel_size // 2 < image height and width, "
            f"got kernel_size {kernel_size} for images of shape {tuple(images.shape)}"
        )
    if height is not None and width is not None and max(height, width) <= 12 * kernel_size:
        return blur_with_matrices(images, blur_matrix(height, sigma, kernel_size),
                                  blur_matrix(width, sigma, kernel_size))
    return _separable_blur(images, tf.constant(_gaussian_taps(sigma, kernel_size), tf.float32))


def _kernel_size(sigma, kernel_size) -> int:
    """Checks sigma >= 0 and an odd kernel_size >= 1; None gives IBA's 2 * round(2 * sigma) + 1."""
    check_positive("sigma", sigma, allow_zero=True)
    if kernel_size is None:
        return 2 * round(2 * float(sigma)) + 1
    if (isinstance(kernel_size, (bool, np.bool_)) or not isinstance(kernel_size, (int, np.integer))
            or kernel_size < 1 or kernel_size % 2 == 0):
        raise ValueError(f"kernel_size: expected an odd int >= 1, got {kernel_size!r}")
    return int(kernel_size)


def _gaussian_taps(sigma, kernel_size):
    offsets = np.arange(kernel_size, dtype=np.float64) - kernel_size // 2
    taps = np.exp(-0.5 * (offsets / float(sigma)) ** 2)
    return taps / taps.sum()


def blur_matrix(size: int, sigma, kernel_size=None, *, padding: str = "reflect") -> np.ndarray:
    """The (size, size) float32 matrix B of a 1-D Gaussian blur: blur(v) = B @ v.

    Row i holds the taps of output i. ``padding="reflect"`` folds them back at the borders as reflect
    padding does (the weights of a row still sum to 1; needs kernel_size // 2 < size);
    ``padding="symmetric"`` folds them with the edge sample repeated (d c b a | a b c d | d c b a:
    scipy.ndimage's mode "reflect", any kernel width; the perceptual ball's smoothing);
    ``padding="zeros"`` drops the taps that fall outside (zero padding: rows near a border sum to less
    than 1, and the kernel may be wider than the signal -- TorchRay's ``imsmooth``, which extremal
    perturbations blur with). ``gaussian_blur`` of (N, H, W, C) = B_H X B_W^T per image and channel
    (:func:`blur_with_matrices`); its adjoint (the backward pass) is the same with B_H^T and B_W^T.
    Same defaults as :func:`gaussian_blur`.
    """
    check_positive("sigma", sigma)
    kernel_size = _kernel_size(sigma, kernel_size)
    check_choice("padding", padding, ("reflect", "symmetric", "zeros"))
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size: expected an int >= 1, got {size!r}")
    radius = kernel_size // 2
    if padding == "reflect" and radius >= size:
        raise ValueError(f"kernel_size: reflect padding needs kernel_size // 2 < {size}, got {kernel_size}")
    matrix = np.zeros((size, size))
    for offset, tap in zip(range(-radius, radius + 1), _gaussian_taps(sigma, kernel_size)):
        source = np.arange(size) + offset
        if padding == "zeros":
            inside = (source >= 0) & (source < size)
            matrix[np.arange(size)[inside], source[inside]] += tap
            continue
        if padding == "symmetric":
            source = np.mod(source, 2 * size)  # the symmetric extension has period 2 * size
            np.add.at(matrix, (np.arange(size), np.where(source >= size, 2 * size - 1 - source, source)), tap)
            continue
        source = np.abs(source)  # reflect at the start: -1 -> 1
        source = np.where(source > size - 1, 2 * (size - 1) - source, source)  # and at the end
        np.add.at(matrix, (np.arange(size), source), tap)
    return matrix.astype(np.float32)


def blur_with_matrices(images, rows, columns):
    """B_rows X B_columns^T for each image and channel of ``images`` (N, H, W, C): two batched matmuls.

    ``rows`` (H, H) acts along the height, ``columns`` (W, W) along the width. With the matrices of
    :func:`blur_matrix` this is the Gaussian blur; with their transposes, its adjoint.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    rows, columns = tf.convert_to_tensor(rows, tf.float32), tf.convert_to_tensor(columns, tf.float32)
    if images.shape.rank != 4 or None in images.shape[1:]:
        raise ValueError(f"images: expected shape (N, H, W, C) with static H, W, C, got {tuple(images.shape)}")
    n = tf.shape(images)[0]
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    for name, matrix, side in (("rows", rows, height), ("columns", columns, width)):
        if tuple(matrix.shape) != (side, side):
            raise ValueError(f"{name}: expected a ({side}, {side}) matrix for images of shape "
                             f"{tuple(images.shape)}, got shape {tuple(matrix.shape)}")
    out = tf.matmul(rows[None], tf.reshape(images, [n, height, width * channels]))
    out = tf.matmul(columns[None], tf.reshape(out, [n * height, width, channels]))
    return tf.reshape(out, [n, height, width, channels])


@tf.function
def _separable_blur(images, kernel):
    channels = tf.shape(images)[3]
    radius = (tf.size(kernel) - 1) // 2
    # One depthwise pass per axis, the same 1-D kernel for every channel (no transposes: ~5x faster on
    # CPU than folding the channels into the batch, forward and backward).
    column = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), tf.stack([1, 1, channels, 1]))
    row = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), tf.stack([1, 1, channels, 1]))
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    blurred = tf.nn.depthwise_conv2d(padded, column, strides=[1, 1, 1, 1], padding="VALID")
    return tf.nn.depthwise_conv2d(blurred, row, strides=[1, 1, 1, 1], padding="VALID")


def total_variation(masks):
    """Squared anisotropic total variation of each mask: (N, H, W) or (N, H, W, 1) -> (N,).

    The masking paper's TV (Gupta et al. 2022, eq. 6; definition read from the authors' code):
    sum over i < H-1 and j < W-1 of (M[i,j] - M[i+1,j])^2 + (M[i,j] - M[i,j+1])^2. Both terms stop at
    row H-2 and column W-2, so the differences along the last row and last column are not counted.
    """
    masks = as_float_tensor("masks", masks, rank=(3, 4))
    if masks.shape.rank == 4 and masks.shape[-1] != 1:
        raise ValueError(f"masks: expected shape (N, H, W) or (N, H, W, 1), got {tuple(masks.shape)}")
    return _total_variation(masks)


@tf.function
def _total_variation(masks):
    if masks.shape.rank == 4:
        masks = masks[..., 0]
    core = masks[:, :-1, :-1]
    squared = tf.square(core - masks[:, 1:, :-1]) + tf.square(core - masks[:, :-1, 1:])
    return tf.reduce_sum(squared, axis=[1, 2])


def resize(images, size, method="bilinear"):
    """Resize (N, H, W) or (N, H, W, C) to (N, h, w[, C]) with ``size`` = (h, w); same rank back.

    ``method``: "bilinear" (tf.image.resize: half-pixel centres, no antialiasing; the convention of
    PyTorch's interpolate with align_corners=False) or "nearest".
    """
    images = as_float_tensor("images", images, rank=(3, 4))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or any(isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or s < 1
                   for s in size)):
        raise ValueError(f"size: expected a pair (height, width) of ints >= 1, got {size!r}")
    check_choice("method", method, ("bilinear", "nearest"))
    return _resize(images, (int(size[0]), int(size[1])), method)


@tf.function
def _resize(images, size, method):
    if images.shape.rank == 3:
        return tf.image.resize(images[..., None], size, method=method)[..., 0]
    return tf.image.resize(images, size, method=method)


def upsample_nearest(x, factor):
    """Repeat each pixel of (N, h, w) or (N, h, w, C) ``factor`` times along both spatial axes.

    Exact repetition, (N, h*factor, w*factor[, C]): MEED's 56x56 ImageNet mask upsampled x4.
    """
    x = as_float_tensor("x", x, rank=(3, 4))
    if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"factor: expected an int >= 1, got {factor!r}")
    return _upsample_nearest(x, int(factor))


@tf.function
def _upsample_nearest(x, factor):
    return tf.repeat(tf.repeat(x, factor, axis=1), factor, axis=2)
