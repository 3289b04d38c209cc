"""Compute targets: where a run's job executes, as a lifecycle of named steps (:mod:`~mltrain.compute.base`).

One package per kind, each with its typed config, target, handles and helpers: :mod:`~mltrain.compute.local`
(this machine), :mod:`~mltrain.compute.docker` (a Docker engine), :mod:`~mltrain.compute.ssh` (SSH hosts),
:mod:`~mltrain.compute.ray` (a Ray cluster). :mod:`~mltrain.compute.targets` builds one from a config
node, :mod:`~mltrain.compute.schemas` lists their typed configs for Hydra, and
:mod:`~mltrain.compute.archive` unpacks the outputs a remote job sends back. What runs on the remote
side is :mod:`mltrain.remote`.
"""
