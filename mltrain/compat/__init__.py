"""Stand-ins for other platforms' in-script APIs, standard library only, mapped onto
:mod:`mltrain.run_context`. ``azureml/`` is copied onto the ``PYTHONPATH`` of a job whose
environment has no real ``azureml-core`` (see mltrain/runs/compat.py), so that a script written
for Azure ML runs as-is; its modules import nothing of mltrain but ``mltrain.run_context``."""
