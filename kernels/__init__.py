"""Shared TensorFlow kernels: top-k masks, target gradients, SOFT top-k, sliced Wasserstein, image ops, perturbation, tiles,
random grid masks (RISE), batched weighted least squares, Adam steps, seeds (kernels.seeds).

Each public function validates its arguments eagerly (kernels.validation) and runs a module-level
tf.function over the whole batch. The paper packages import only from here, never from each other.
"""
from kernels.gradients import target_gradient
from kernels.image import blur_matrix, blur_with_matrices, gaussian_blur, resize, total_variation, upsample_nearest
from kernels.masks import random_grid_masks
from kernels.optim import adam_step
from kernels.perturb import BASELINES, blend, perturb
from kernels.regression import normal_equations, solve_normal_equations, weighted_least_squares
from kernels.soft_topk import soft_topk
from kernels.tiles import n_tiles, tile_grid, tile_scores, tiles_to_pixels
from kernels.seeds import replica_draw, seeded, stateless_seed, step_seed
from kernels.topk import gumbel_topk, topk_mask
from kernels.wasserstein import projection_directions, sliced_wasserstein

__all__ = [
    "BASELINES",
    "adam_step",
    "blend",
    "blur_matrix",
    "blur_with_matrices",
    "gaussian_blur",
    "gumbel_topk",
    "n_tiles",
    "normal_equations",
    "perturb",
    "projection_directions",
    "random_grid_masks",
    "replica_draw",
    "resize",
    "seeded",
    "sliced_wasserstein",
    "soft_topk",
    "solve_normal_equations",
    "stateless_seed",
    "step_seed",
    "target_gradient",
    "tile_grid",
    "tile_scores",
    "tiles_to_pixels",
    "topk_mask",
    "total_variation",
    "upsample_nearest",
    "weighted_least_squares",
]
