"""MEED's entry in the one method registry (eval.registry), so that every CLI and the benchmark find it."""
from eval.registry import register
from meed.builder import explainer

register("meed", explainer, paper="Liang et al., KDD 2020", requires_fit=True, needs_labels=False)
