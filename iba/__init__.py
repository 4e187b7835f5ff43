"""Information Bottleneck Attribution (Schulz et al., ICLR 2020): Per-Sample and Readout bottlenecks.
Not implemented yet: the IBA issue fills this package."""
