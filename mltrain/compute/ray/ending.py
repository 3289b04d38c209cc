"""Ending a run's Ray jobs: stop every running attempt, and delete them only once Ray reports them
terminal (deleted earlier, Ray's own job list would show them as FAILED)."""

from __future__ import annotations

import math
import time

from mltrain.compute.ray.connection import TERMINAL, RayConnection, status_of
from mltrain.errors import ComputeError

JOB_END_WAIT_S = 10  # a job whose wrapper sent its exit code ends by itself within this, else it is stopped
SUPERVISOR_END_WAIT_S = 30  # longest wait for a terminal job's supervisor actor to end before deleting it
MONITOR_PERIOD_S = 2.0  # twice the period of Ray's job server checking a job's supervisor
STOP_MARGIN_S = 30  # beyond the grace period: time for the wrapper to send the outputs back


def stop_attempts(conn: RayConnection, job: str) -> bool:
    """Stop every running attempt of ``job`` and wait until Ray reports it ended; False when none
    ran. (The grace period is the one the job was submitted with: Ray cannot change it afterwards.)"""
    running = [sid for sid, status in conn.attempts(job) if status not in TERMINAL]
    taken = {sid: conn.stop_job(sid) for sid in running}
    deadline = time.monotonic() + math.ceil(conn.config.cancel_grace_s) + STOP_MARGIN_S + 60
    for sid in running:
        while time.monotonic() < deadline:
            try:
                if status_of(conn.client.get_job_info(sid)) in TERMINAL:
                    break
            except Exception:  # noqa: BLE001 - gone
                break
            taken[sid] = taken[sid] or conn.stop_job(sid)  # a job just submitted may have no supervisor yet
            time.sleep(0.5)
    return bool(running)


def delete_jobs(conn: RayConnection, job: str) -> None:
    """Delete the Ray jobs of a run (unless ``keep_job``). The job of a run whose exit code came back may
    still be ending: it gets ``JOB_END_WAIT_S`` to end by itself, then it is stopped. A job is deleted
    once Ray reports it terminal and its supervisor actor is gone (and Ray's job server has seen that):
    deleted earlier, Ray would list it again as FAILED ("Job supervisor actor died")."""
    if conn.config.keep_job or not conn.connected:
        return
    try:
        attempts = conn.attempts(job)
        deadline = time.monotonic() + JOB_END_WAIT_S
        while any(status not in TERMINAL for _, status in attempts) and time.monotonic() < deadline:
            time.sleep(0.2)  # the wrapper sent its exit code: the job ends by itself in a moment
            attempts = conn.attempts(job)
        if any(status not in TERMINAL for _, status in attempts):
            stop_attempts(conn, job)
        if not attempts:
            return
        deadline = time.monotonic() + SUPERVISOR_END_WAIT_S
        sids = [sid for sid, _ in attempts]
        while conn.supervisors_alive(sids) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(MONITOR_PERIOD_S)  # Ray's job server notices the supervisor's end on its next check
        for sid, _ in attempts:
            try:
                conn.client.delete_job(sid)
            except Exception:  # noqa: BLE001 - already deleted
                pass
    except ComputeError:
        pass
