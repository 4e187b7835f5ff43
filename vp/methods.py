"""VP's entries in the one method registry (eval.registry): "vp" and its non-variational ablation "nvp"."""
from eval.registry import register
from vp.model import NVP, VP

PAPER = "Variational Perturbations (ICLR 2022 submission)"
register("vp", VP, paper=PAPER)
register("nvp", NVP, paper=PAPER + ", Section 4.1 (nVP)")
