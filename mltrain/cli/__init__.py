"""The ``mltrain`` management command: runs, experiments, models, environments, endpoints."""
