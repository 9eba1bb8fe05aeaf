"""Command-line entry points: `python -m experiments.run`, `python -m experiments.recommend`."""
