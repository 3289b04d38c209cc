"""Why a sweep stopped decides how it ends: canceled (Ctrl-C, `mltrain runs cancel`), or by its children
(a time budget that ran out, a child that failed with fail_fast) — by the cause, whatever its text."""

from __future__ import annotations

import pytest

from mltrain.runs.sweep.progress import Progress
from mltrain.runs.sweep.session import Sweep
from mltrain.runs.sweep.settings import SweepConfig
from mltrain.runs.sweep.trials import Stop, StopCause, SweepSpec, TrialOutcome, TrialRequest
from mltrain.workspace.runs import new_run_id


@pytest.mark.parametrize(
    "cause, failed, status, code, error",
    [
        (StopCause.SIGNAL, 1, "Canceled", 130, "the reason"),
        (StopCause.CANCEL_COMMAND, 0, "Canceled", 130, "the reason"),
        (StopCause.FAIL_FAST, 1, "Failed", 1, "1 children failed"),
        (StopCause.MAX_DURATION, 0, "Completed", 0, None),
        (StopCause.MAX_DURATION, 1, "Failed", 1, "1 children failed"),
    ],
)
def test_the_stop_cause_decides_the_sweeps_status(project, cause, failed, status, code, error):
    base = {
        "experiment_name": "e",
        "workspace": {"root": str(project / ".mltrain"), "db_url": None, "artifact_root": None},
    }
    spec = SweepSpec(base, SweepConfig(), [], lambda o, n: ({}, []), lambda s: iter(()), Progress, echo=False)  # type: ignore[arg-type]
    with Sweep(spec) as sweep:
        sweep.sweep_id = new_run_id()
        run_dir = sweep.ws.run_dir(sweep.sweep_id)
        sweep.ws.runs.create(sweep.sweep_id, "e", run_dir=str(run_dir))
        sweep.progress = Progress(run_dir, None, echo=False)
        ended = ["Completed"] + ["Failed"] * failed
        sweep.outcomes = [TrialOutcome(TrialRequest([], []), n, None, s) for n, s in enumerate(ended)]
        sweep.stop(Stop(cause, "the reason"))
        assert sweep.finish() == code
        parent = sweep.ws.runs.get(sweep.sweep_id)
    assert (parent["status"], parent["error"]) == (status, error)
