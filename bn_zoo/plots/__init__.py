"""Plots of the paper's figures from trainer workdirs (matplotlib, Agg)."""
