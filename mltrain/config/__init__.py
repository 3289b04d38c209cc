"""Hydra configuration: schemas, the config search path and the ``python -m mltrain`` app."""
