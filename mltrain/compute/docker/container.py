"""A job's container, the same on a Docker engine (the docker target) and on an SSH host (a job of
``build: docker``): the run folder mounted read-write as the working folder ``/mltrain/run``, the
in-script API on ``PYTHONPATH``, only the job's environment (never the caller's), labelled with the
run (:class:`mltrain.environments.container.ContainerSpec` says how every mltrain container runs). A job's
mounted inputs (``job.inputs.NAME.mode=mount``) are bound read-only over their folders in the run folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mltrain.compute.base import RunSpec, job_environment
from mltrain.environments.container import ContainerSpec
from mltrain.remote import inputs as node_io

if TYPE_CHECKING:
    from mltrain.environments.base import Materialised

RUN_DIR = "/mltrain/run"
SHIM_DIR = "/mltrain/shim"
LABEL_RUN = "mltrain.run_id"
LABEL_EXPERIMENT = "mltrain.experiment"


def container_name(run_id: str) -> str:
    return f"mltrain-{run_id}"


def job_container(
    spec: RunSpec,
    env: Materialised,
    run_dir: str,
    *,
    shim_dir: str | None = None,
    shim_in_run: str | None = None,
    user: str | None = None,
    network: str = "host",
    cpus: float | None = None,
    memory_gb: float | None = None,
) -> ContainerSpec:
    """The container of ``spec``'s job in ``env``'s image, with ``run_dir`` (a folder where the engine
    runs) as its working folder. The in-script API is the folder ``shim_dir`` there (mounted read-only),
    or ``shim_in_run``, a folder of the run folder."""
    binds = {run_dir: {"bind": RUN_DIR, "mode": "rw"}}
    for inp in spec.inputs:  # a mounted input: read-only in the container, whoever the script runs as
        if inp.mode == node_io.MOUNT:
            rel = f"{node_io.INPUTS_DIR}/{inp.name}"
            binds[f"{run_dir}/{rel}"] = {"bind": f"{RUN_DIR}/{rel}", "mode": "ro"}
    shim = None
    if shim_dir is not None:
        binds[shim_dir] = {"bind": SHIM_DIR, "mode": "ro"}
        shim = SHIM_DIR
    elif shim_in_run is not None:
        shim = f"{RUN_DIR}/{shim_in_run}"
    return ContainerSpec(
        image=env.location,
        command=[env.python, spec.script, *spec.argv(RUN_DIR)],
        name=container_name(spec.run_id),
        working_dir=RUN_DIR,
        environment=job_environment(spec, env, RUN_DIR, shim, inherit=False),
        labels={LABEL_RUN: spec.run_id, LABEL_EXPERIMENT: spec.experiment},
        binds=binds,
        user=user,
        network=network,
        cpus=cpus,
        memory_gb=memory_gb,
    )
