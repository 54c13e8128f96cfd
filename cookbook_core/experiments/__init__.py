"""Experiments that reproduce the papers' effects, and the results report."""
