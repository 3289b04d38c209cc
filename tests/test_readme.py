"""The README's examples run as written: every ``console`` block's ``$`` lines, in order, in a fresh
project folder, must succeed; the documented commands exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support import ROOT, readme_block, readme_compute_target, write_script

README = (ROOT / "README.md").read_text()


def console_blocks() -> list[list[str]]:
    blocks = re.findall(r"```console\n(.*?)```", README, flags=re.S)
    return [[line[2:].split("  #")[0].strip() for line in b.splitlines() if line.startswith("$ ")] for b in blocks]


def _bash(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _run_block(lines: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a README block as one shell session (variables carry over), stopping at the first failure."""
    return _bash("set -euo pipefail\n" + "\n".join(lines), cwd)


def _block_with(text: str) -> list[str]:
    return next(b for b in console_blocks() if any(text in line for line in b))


def test_quick_start_runs_as_written(project):
    quick = console_blocks()[0]
    assert quick[0] == "python -m mltrain"
    proc = _run_block(quick, project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sklearn-iris version 2" in proc.stdout


def test_models_and_endpoints_examples_run_as_written(project):
    try:
        models = _run_block(_block_with("mltrain models alias"), project)
        assert models.returncode == 0, models.stdout + models.stderr
        assert "production" in models.stdout
        served = _run_block(_block_with("endpoints deploy"), project)
        assert served.returncode == 0, served.stdout + served.stderr
        assert '{"predictions":[0,2]}' in served.stdout
        assert "iris-prod deleted" in served.stdout
    finally:
        for name in ("sklearn-iris", "iris-prod"):
            _bash(f"mltrain endpoints delete {name} --missing-ok", project)


def test_data_example_runs_as_written(project):
    proc = _run_block(_block_with("mltrain data create"), project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "created data:iris-data:2: 2 files" in proc.stdout
    assert "changed:" in proc.stdout and "split/test.csv" in proc.stdout
    assert "baseline" in proc.stdout and "data:iris-data:2 archived" in proc.stdout
    assert (project / "restored" / "split" / "test.csv").read_text() == "a,b\n3,4\n"


def test_user_project_example_runs(project):
    yaml_block = re.search(r"```yaml\n# conf/job/myjob.yaml\n(.*?)```", README, flags=re.S)
    assert yaml_block
    (project / "conf" / "job").mkdir(parents=True)
    (project / "conf" / "job" / "myjob.yaml").write_text(yaml_block.group(1))
    (project / "train.py").write_text(
        "import argparse\nfrom mltrain import Run\np = argparse.ArgumentParser()\np.add_argument('--alpha')\n"
        "Run.get_context().log('alpha', float(p.parse_args().alpha))\n"
    )
    for block in console_blocks()[1:]:
        for line in block:
            if "job=myjob" in line:
                proc = _bash(line, project)
                assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_documented_command_exists():
    commands = re.findall(r"^mltrain ([a-z]+) ([a-z]+)", README, flags=re.M)
    assert commands
    for group, action in commands:
        proc = subprocess.run(
            [sys.executable, "-m", "mltrain.cli.main", group, action, "--help"], capture_output=True, text=True
        )
        assert proc.returncode == 0, f"mltrain {group} {action}: {proc.stderr}"


def test_environment_example_is_a_valid_spec(project):
    block = re.search(r"```yaml\n# conf/environment/myenv.yaml\n(.*?)```", README, flags=re.S)
    assert block
    (project / "conf" / "environment").mkdir(parents=True)
    (project / "conf" / "environment" / "myenv.yaml").write_text(block.group(1))
    proc = _bash("python -m mltrain environment=myenv --cfg job --resolve", project)
    assert proc.returncode == 0, proc.stderr
    import yaml

    from mltrain.environments.spec import EnvSpec

    spec = EnvSpec.from_config(yaml.safe_load(proc.stdout)["environment"])
    assert spec.python == "3.11" and "pandas" in spec.requirements and spec.env_vars == {"OMP_NUM_THREADS": "1"}


def test_in_script_api_example_runs_in_a_job(project):
    block = re.search(r"```python\n(from mltrain import Run\n.*?)```", README, flags=re.S)
    assert block
    setup = (
        "import os, joblib\nfrom sklearn.dummy import DummyClassifier\nos.makedirs('outputs', exist_ok=True)\n"
        "joblib.dump(DummyClassifier().fit([[0]], [0]), 'outputs/model.joblib')\n"
        "open('summary.md', 'w').write('# summary')\n"
    )
    (project / "src").mkdir()
    (project / "src" / "api.py").write_text(setup + block.group(1))
    proc = _bash("python -m mltrain environment=system '~register' job.source_dir=src job.script=api.py", project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = _bash("mltrain models show my-model --json", project)
    assert '"stage": "baseline"' not in shown.stdout and '"data": "v2"' in shown.stdout
    run = _bash(
        'mltrain runs show $(mltrain runs list --json | python -c "import json,sys; '
        "print(json.load(sys.stdin)[0]['id'])\") --json",
        project,
    )
    assert (
        '"accuracy": 0.97' in run.stdout and "reports/summary.md" in run.stdout and '"stage": "baseline"' in run.stdout
    )


def test_secret_example_keeps_the_value_out_of_the_workspace(project):
    proc = _run_block(_block_with("oc.env:DB_PASSWORD"), project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "s3cr3t-example" not in proc.stdout + proc.stderr
    leaked = [p for p in (project / ".mltrain").rglob("*") if p.is_file() and b"s3cr3t-example" in p.read_bytes()]
    assert leaked == []
    shown = _bash("mltrain runs list --json", project)
    assert "s3cr3t-example" not in shown.stdout


def test_compute_target_example_runs_a_job(mltrain, cli_json, project):
    readme_compute_target(project)
    write_script(
        project,
        "train.py",
        "import os\nfrom mltrain import Run\nRun.get_context().log('niceness', os.nice(0))\n"
        "os.makedirs('outputs', exist_ok=True)\nopen('outputs/done.txt', 'w').write('done')\nprint('trained')\n",
    )
    line = next(x for x in readme_block("sh", "python -m mltrain +compute=mine").splitlines() if "+compute=mine" in x)
    proc = mltrain(*line.split()[3:], "environment=system")
    assert proc.returncode == 0, proc.output
    assert "trained" in proc.stdout  # streamed through the sink
    run = cli_json("runs", "show", cli_json("runs", "list")[0]["id"])
    assert run["compute"] == "nice" and run["job_ref"]["kind"] == "nice"
    assert run["metrics"]["niceness"] == min(19, os.nice(0) + 10)
    assert "outputs/done.txt" in {a["path"] for a in run["artifacts"]}


def test_in_script_api_and_cluster_docs_name_flush_and_the_default_address():
    from mltrain.compute.ray.config import ClusterComputeConfig

    # the block runs in a job in test_in_script_api_example_runs_in_a_job
    assert "run.flush()" in readme_block("python", "from mltrain import Run")
    address = re.search(r"- `compute.address`:(.*?)\n- ", README, flags=re.S)
    assert address and f"the default is\n  `{ClusterComputeConfig().address}`" in address.group(1)


def test_python_api_and_detached_run_examples_run_as_written(project):
    detached = _run_block(_block_with("python -m mltrain detach=true job.arguments.penalty=0.5"), project)
    assert detached.returncode == 0, detached.stdout + detached.stderr
    assert "started detached" in detached.stdout and "Completed" in detached.stdout
    assert "a rerun of" in detached.stdout or "Run " in detached.stdout
    code = readme_block("python", "import mltrain\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Completed" in proc.stdout and "MetricPoint(step=None, value=0.9" in proc.stdout
    assert (project / "results" / "outputs" / "model.joblib").is_file()


def test_azure_submit_side_example_runs_as_written(project):
    import shutil

    shutil.copy(ROOT / "examples" / "azureml" / "train_iris.py", project / "train_iris.py")
    code = readme_block("python", "from azureml.core import Environment, Experiment, Model") + "\nservice.delete()\n"
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=900)
    finally:
        _bash("mltrain endpoints delete my-sklearn-service --missing-ok", project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "{'predictions': [2]}" in proc.stdout and "Accuracy of SVM classifier" in proc.stdout


def test_data_inputs_and_outputs_example_runs_as_written(project):
    write_script(project / "prep", "prep.py", readme_block("python", "# prep/prep.py"))
    proc = _run_block(_block_with("+job.outputs.clean.path=data:clean"), project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "same path in the environment: True" in proc.stdout
    assert "output: data:clean:1" in proc.stdout + proc.stderr
    assert "produced by" in proc.stdout and "rows.csv" in proc.stdout
