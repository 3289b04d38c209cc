"""The README's examples run as written: every ``console`` block's ``$`` lines, in order, in a fresh
project folder, must succeed; the documented commands exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support import ROOT

README = (ROOT / "README.md").read_text()


def console_blocks() -> list[list[str]]:
    blocks = re.findall(r"```console\n(.*?)```", README, flags=re.S)
    return [[line[2:].split("  #")[0].strip() for line in b.splitlines() if line.startswith("$ ")] for b in blocks]


def _bash(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_quick_start_runs_as_written(project):
    quick = console_blocks()[0]
    assert quick[0] == "python -m mltrain"
    for line in quick:
        proc = _bash(line, project)
        assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
    shown = _bash("mltrain models show sklearn-iris:2", project)
    assert "sklearn-iris version 2" in shown.stdout


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
