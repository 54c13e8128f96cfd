"""Template alignment: rules applied to real examples and statistics over evaluation runs."""
