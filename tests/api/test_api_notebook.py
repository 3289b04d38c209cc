"""The Python API from Jupyter: a real notebook executed by a Jupyter kernel (nbclient + ipykernel)."""

from __future__ import annotations

from support import run_notebook, write_script

SCRIPT = """
from mltrain import Run
run = Run.get_context()
for i in range(3):
    print('line', i)
    run.log('m', i * i, step=i)
"""


def test_a_notebook_submits_waits_with_output_and_reads_the_workspace(project, cli_json):
    write_script(project / "src", "nb.py", SCRIPT)
    out = run_notebook(
        [
            "import mltrain\n"
            "run = mltrain.submit('environment=system', '~register', 'job.source_dir=src', 'job.script=nb.py',"
            " 'experiment_name=notebook')\n"
            "print('submitted', run.id)",
            "status = run.wait(show_output=True)\nprint('status', status)",
            "print([(p.step, p.value) for p in run.metrics('m')])",
            "ws = mltrain.Workspace()\n"
            "frame = ws.runs(experiment='notebook').to_pandas()\n"
            "print(list(frame['status']))",
        ],
        project,
    )
    run_id = out[0].split("submitted ", 1)[1].strip()
    assert "line 0" in out[1] and "line 2" in out[1] and "status Completed" in out[1]  # streamed into the cell
    assert out[2].strip() == "[(0, 0.0), (1, 1.0), (2, 4.0)]"
    assert out[3].strip() == "['Completed']"
    assert cli_json("runs", "show", run_id)["experiment"] == "notebook"
