"""IBA's entries in the one method registry (eval.registry): the Per-Sample and the Readout Bottleneck."""
from eval.registry import register
from iba.per_sample import InformationBottleneck
from iba.readout import ReadoutBottleneck

register("iba", InformationBottleneck, aliases=("iba_per_sample", "per_sample_iba"),
         paper="Schulz et al., ICLR 2020, Section 3.2")
register("iba_readout", ReadoutBottleneck, aliases=("readout_iba",), paper="Schulz et al., ICLR 2020, Section 3.3")
