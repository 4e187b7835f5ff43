"""Comparison methods of the four papers behind one registry (gradients, perturbation, surrogates,
amortised explainers). Not implemented yet: the baselines issue fills this package; it holds no code
that pretends to work in the meantime."""
