"""Compute targets: where a run's job executes (local, docker, ssh, cluster), as a lifecycle of named steps."""
