"""Cookbook-Mix: mixing math, mixture sources, building mixtures, cells and sweeps."""
