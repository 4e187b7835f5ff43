"""Variational Perturbations: a variational explainer trained with a differentiable (SOFT) top-k.
Not implemented yet: the VP issue fills this package (its top-k kernel is kernels.soft_topk)."""
