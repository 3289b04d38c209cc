"""Docker compute: the job runs in a container of its environment's image (``mltrain-env:<hash>``).

The run folder is mounted read-write at ``/mltrain/run`` (the working directory), so the script's
outputs, logs and metrics land where the driver reads them and nothing has to be copied back. The
in-script API is mounted read-only at ``/mltrain/shim`` and put on ``PYTHONPATH``. The container
gets only the job's environment (never the caller's), runs as the caller's uid:gid by default so
the files it writes are the caller's, with ``docker-init`` as PID 1 so signals reach the script.
Its reference is ``{"kind": "docker", "container", "engine"}``: any process that reaches the engine
can follow, stop and remove it.

The target is :mod:`~mltrain.compute.docker.target`, its handle :mod:`~mltrain.compute.docker.handle`,
the engine it talks to :mod:`~mltrain.compute.docker.engine`.
"""

from mltrain.compute.docker.config import DockerComputeConfig
from mltrain.compute.docker.target import DockerCompute

__all__ = ["DockerCompute", "DockerComputeConfig"]
