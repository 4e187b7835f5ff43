"""The masking paper's entry in the one method registry (eval.registry): the mask optimiser with distractors."""
from eval.registry import register
from masking.optimiser import MaskOptimisation

register("masking", MaskOptimisation, aliases=("mask_optimisation", "mask_optimization"),
         paper="Gupta et al., NeurIPS 2022, Appendix A (eq. 6)")
