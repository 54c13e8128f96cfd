"""SELF-GUIDE: tasks, filters and the pipeline."""
