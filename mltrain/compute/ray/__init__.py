"""Ray cluster compute: each run a Ray job submitted through Ray's Job Submission API, or, in a sweep
that prewarmed, a fork of a warm actor that imported the script's modules once.

:mod:`~mltrain.compute.ray.target` (the target), :mod:`~mltrain.compute.ray.connection` (address,
token, job client: one per target, shared by its two executors), :mod:`~mltrain.compute.ray.jobs`
(a Ray job per run, and its handle), :mod:`~mltrain.compute.ray.warm` and
:mod:`~mltrain.compute.ray.warm_pool` (warm actors, and a trial's handle),
:mod:`~mltrain.compute.ray.runtime` (staged snapshots, runtime_env, resources),
:mod:`~mltrain.compute.ray.stream` (a job's log decoded), :mod:`~mltrain.compute.ray.auth` (the
token), :mod:`~mltrain.compute.ray.driver` (this process as a Ray driver),
:mod:`~mltrain.compute.ray.local_cluster` (``address: local``). What runs on the nodes is
:mod:`mltrain.remote` (``ray_job``, ``ray_warm``, ``ray_boot``).
"""

from mltrain.compute.ray.config import ClusterComputeConfig
from mltrain.compute.ray.target import ClusterCompute

__all__ = ["ClusterCompute", "ClusterComputeConfig"]
