"""Evaluation: tasks, scoring, model backends and evaluation runs."""
