"""Hydra sweeper plugin: grid, random and Bayesian (Optuna) sweeps declared in ``sweep`` (``hydra/sweeper=mltrain``)."""
