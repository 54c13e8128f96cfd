"""Models and fine-tuning."""
