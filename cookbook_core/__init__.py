"""Cookbook Studio's headless library: templates, generation, training, evaluation,
mixing and alignment.  The studio (``app.py``), the ``cookbook`` command and Python
code all drive it; importing the package loads nothing heavy."""

__version__ = "0.1.0"
