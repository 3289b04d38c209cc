"""The code that runs where jobs run, away from mltrain: on Ray nodes (the job wrapper ``ray_job``,
the warm workers ``ray_warm`` and ``ray_boot`` with their fork server), on SSH hosts (the helper
``ssh_agent``), and the fork servers of local sweeps (``forkserver``), with the process helpers
they share (``procs``).

Standard library only, and nothing of mltrain outside this package (checked by the import contract
in pyproject.toml and tests/test_architecture.py): every ``.py`` file of this folder is shipped to
Ray nodes with the in-script API (:data:`mltrain.environments.shim.REMOTE_FILES`) and to SSH hosts
as the helper's archive, and runs in whatever Python is there.
"""
