"""Mask optimisation with completeness and soundness (Gupta et al., NeurIPS 2022).
Not implemented yet: the masking issue fills this package (its TV kernel is kernels.total_variation)."""
