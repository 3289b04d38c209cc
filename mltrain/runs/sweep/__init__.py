"""Sweeps: a parent run and its children (the session), their search, early termination and progress, and
the core of mltrain's Hydra launcher and sweeper (plugins/hydra_plugins/)."""
