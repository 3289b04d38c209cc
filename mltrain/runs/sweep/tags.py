"""The tags a sweep puts on its runs (standard library only: read by the Python API and the dashboard)."""

SWEEP_TAG = "mltrain.sweep"  # on the parent: "parent"; on a child: the parent's id
BEST_RUN_TAG = "mltrain.sweep.best_run"  # on the parent: its best child
TRIAL_TAG = "mltrain.sweep.trial"  # a child's trial number
PARAMS_TAG = "mltrain.sweep.params"  # a child's sampled parameters (JSON), for resume
KEY_TAG = "mltrain.sweep.key"  # a child's defining overrides (JSON list), for resume
