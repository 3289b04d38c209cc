"""Config composition: overrides, --cfg, errors before anything runs, a user's own conf/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import ROOT, write_script


def _no_workspace(project: Path) -> bool:
    return not (project / ".mltrain" / "mltrain.db").exists()


def test_cfg_job_prints_the_resolved_config_and_runs_nothing(mltrain, project):
    proc = mltrain("--cfg", "job", "job.arguments.penalty=0.5")
    assert proc.returncode == 0, proc.output
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["job"]["arguments"] == {"kernel": "rbf", "penalty": 0.5}
    assert cfg["environment"]["name"] == "sklearn"
    assert cfg["register"]["name"] == "sklearn-iris"
    assert _no_workspace(project)


def test_unknown_key_names_it_and_the_valid_keys(mltrain, project):
    proc = mltrain("job.argumentz.penalty=1")
    assert proc.returncode == 2
    assert "job.argumentz" in proc.stderr
    assert "Valid keys under job:" in proc.stderr and "arguments" in proc.stderr
    assert _no_workspace(project)


def test_unknown_argument_names_the_valid_arguments(mltrain, project):
    proc = mltrain("job.arguments.penlty=1")
    assert proc.returncode == 2
    assert "penlty" in proc.stderr and "kernel, penalty" in proc.stderr
    assert "+job.arguments.penlty=1" in proc.stderr  # how to add one on purpose
    assert _no_workspace(project)


def test_unknown_group_option_lists_the_choices(mltrain, project):
    proc = mltrain("environment=sklern")
    assert proc.returncode == 2
    assert "environment/sklern" in proc.stderr and "sklearn" in proc.stderr and "system" in proc.stderr
    assert _no_workspace(project)


def test_unknown_group_names_the_groups(mltrain, project):
    proc = mltrain("compute=docker")  # compute is not in the defaults: it needs +compute=...
    assert proc.returncode == 2
    assert "+compute=docker" in proc.stderr and "Config groups:" in proc.stderr


def test_missing_script_is_an_error_before_anything_runs(mltrain, project):
    write_script(project / "src", "train.py", "print('hi')\n")
    proc = mltrain("environment=system", "job.source_dir=src", "job.script=trian.py")
    assert proc.returncode == 2
    assert "trian.py" in proc.stderr and "train.py" in proc.stderr
    assert not (project / ".mltrain" / "runs").exists() or not any((project / ".mltrain" / "runs").iterdir())


def test_unknown_compute_option_names_valid_options(mltrain, project):
    proc = mltrain("+compute=local", "+compute.grace=1", "environment=system")
    assert proc.returncode == 2
    assert "grace" in proc.stderr and "cancel_grace_s" in proc.stderr


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("compute.cpuss=2", "Key 'cpuss' not in 'DockerComputeConfig'"),
        ("compute.cpus=many", "Value 'many' of type 'str' could not be converted to Float"),
        ("compute.keep_container=perhaps", "compute.keep_container"),
    ],
)
def test_typed_compute_options_fail_at_composition(mltrain, project, override, named):
    # no engine is needed: a wrong option or type is refused while the config is composed
    proc = mltrain("+compute=docker", override, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 2, proc.output
    assert "config error" in proc.stderr and named in proc.stderr
    if "cpuss" in override:
        assert "Valid keys under compute: _target_, base_url, cancel_grace_s, cpus" in proc.stderr
    assert "cannot be reached" not in proc.stderr  # refused before the target was even created
    assert not (project / ".mltrain").exists()


def test_typed_deploy_options_fail_at_composition(mltrain, project):
    proc = mltrain("+deploy=local", "deploy.prot=8080")
    assert proc.returncode == 2
    assert "Key 'prot' not in 'LocalDeployConfig'" in proc.stderr and "port" in proc.stderr
    assert not (project / ".mltrain").exists()


def test_a_value_check_of_a_typed_option_names_it(mltrain, project):
    proc = mltrain("+compute=docker", "compute.memory_gb=-1", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 2
    assert "compute.memory_gb=-1.0 must be a positive number" in proc.stderr


def test_typo_in_a_users_job_file_is_caught(mltrain, project):
    conf = project / "conf" / "job"
    conf.mkdir(parents=True)
    (conf / "bad.yaml").write_text("source_dir: .\nscrpt: train.py\n")
    proc = mltrain("job=bad")
    assert proc.returncode == 2
    assert "scrpt" in proc.stderr and "script" in proc.stderr


USER_JOB = """
name: myexp
source_dir: .
script: train.py
arguments:
  alpha: 0.5
"""
USER_SCRIPT = """
import argparse
from mltrain import Run
p = argparse.ArgumentParser(); p.add_argument("--alpha", type=float)
a = p.parse_args()
Run.get_context().log("alpha_seen", a.alpha)
"""


USER_TARGET = '''
from mltrain.compute.local import LocalCompute


class ChattyCompute(LocalCompute):
    """A user's own, untyped compute target: explicit options, no config dataclass."""

    def __init__(self, greeting: str = "hi") -> None:
        super().__init__()
        self.greeting = greeting

    def describe(self) -> str:
        return f"chatty ({self.greeting})"
'''


def _make_user_project(folder: Path) -> None:
    (folder / "conf" / "compute").mkdir(parents=True)
    (folder / "conf" / "compute" / "chatty.yaml").write_text("_target_: mytargets.ChattyCompute\ngreeting: hello\n")
    write_script(folder, "mytargets.py", USER_TARGET)
    (folder / "conf" / "job").mkdir(parents=True)

    (folder / "conf" / "job" / "myjob.yaml").write_text(USER_JOB)
    (folder / "conf" / "environment").mkdir()
    (folder / "conf" / "environment" / "mine.yaml").write_text("name: mine\nbuild: system\n")
    write_script(folder, "train.py", USER_SCRIPT)


def test_user_project_conf_extends_the_builtin_groups(mltrain, cli_json, project):
    _make_user_project(project)
    proc = mltrain("job=myjob", "environment=mine", "job.arguments.alpha=2")
    assert proc.returncode == 0, proc.output
    run = cli_json("runs", "show", cli_json("runs", "list")[0]["id"])
    assert run["experiment"] == "myexp"
    assert run["metrics"] == {"alpha_seen": 2.0}
    # built-in options stay available beside the user's
    listed = mltrain("environment=system", "job=myjob", "--cfg", "job")
    assert listed.returncode == 0 and "name: system" in listed.stdout


def test_a_users_own_untyped_compute_target_works_and_its_options_are_checked(mltrain, cli_json, project):
    _make_user_project(project)
    proc = mltrain("job=myjob", "environment=mine", "+compute=chatty", "compute.greeting=hey")
    assert proc.returncode == 0, proc.output
    assert cli_json("runs", "list")[0]["compute"] == "chatty (hey)"
    typo = mltrain("job=myjob", "environment=mine", "+compute=chatty", "+compute.greting=hey")
    assert typo.returncode == 2
    assert "has no option 'greting'" in typo.stderr and "valid options: greeting" in typo.stderr


def test_user_project_from_a_wheel_in_a_clean_venv(tmp_path):
    """Build the wheel, install it into a new venv, run a user's project with its own conf/."""
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "uv", "build", "--wheel", "--out-dir", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:  # uv as a module is optional; the uv binary is always there
        from mltrain.environments.cache import uv_bin

        build = subprocess.run(
            [uv_bin(), "build", "--wheel", "--out-dir", str(dist), str(ROOT)], capture_output=True, text=True
        )
    assert build.returncode == 0, build.stderr
    wheel = next(dist.glob("mltrain-*.whl"))
    from mltrain.environments.cache import uv_bin

    venv = tmp_path / "venv"
    subprocess.run([uv_bin(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    inst = subprocess.run(
        [uv_bin(), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert inst.returncode == 0, inst.stderr
    user = tmp_path / "userproj"
    user.mkdir()
    _make_user_project(user)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    import os

    env["MLTRAIN_CACHE_DIR"] = os.environ["MLTRAIN_CACHE_DIR"]
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "mltrain", "job=myjob", "environment=mine"],
        cwd=user,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Completed" in proc.stdout
    # the installed package (not this checkout) ran, with its bundled configs
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import mltrain.bundled as b; print(b.bundled_dir('conf'))"],
        cwd=user,
        env=env,
        capture_output=True,
        text=True,
    )
    assert str(venv) in where.stdout
    listed = subprocess.run(
        [str(venv / "bin" / "mltrain"), "runs", "list", "--json"], cwd=user, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert '"status": "Completed"' in listed.stdout
    # the bundled iris job is found in the wheel too
    shown = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "mltrain", "--cfg", "job", "--resolve"],
        cwd=user,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "_bundled/examples/iris" in shown.stdout
    # `from azureml.core import ...` finds mltrain's stand-in (a .pth appends it to sys.path) ...
    azure = "from azureml.core import Workspace, ScriptRunConfig; import azureml.core as c; print(c.__file__)"
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", azure], cwd=user, env=env, capture_output=True, text=True
    )
    assert found.returncode == 0, found.stderr
    assert "site-packages/mltrain/compat/azureml/core/__init__.py" in found.stdout
    # ... unless a real azureml-core is installed: site-packages comes first
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "azureml" / "core").mkdir(parents=True)
    (site / "azureml" / "__init__.py").write_text("")
    (site / "azureml" / "core" / "__init__.py").write_text("REAL = True\n")
    real = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import azureml.core as c; print(c.REAL, c.__file__)"],
        cwd=user,
        env=env,
        capture_output=True,
        text=True,
    )
    assert real.stdout.startswith("True " + str(site)), real.stdout + real.stderr


@pytest.mark.parametrize("prefork", ["1", ""], ids=["prefork", "one-process"])
def test_hydra_job_settings_still_apply_to_a_single_run(mltrain, project, prefork):
    """A single run composes once; what Hydra's own run does (``hydra.job.env_set``, callbacks) still happens."""
    write_script(project / "src", "env.py", "import os\nprint('FROM_HYDRA=' + os.environ.get('FROM_HYDRA', '-'))\n")
    (project / "mark.py").write_text(
        "from pathlib import Path\nfrom hydra.experimental.callback import Callback\n\n"
        "class Mark(Callback):\n    def on_job_start(self, config, **kw):\n        Path('job-started').touch()\n"
    )
    env = {"MLTRAIN_NO_PREFORK": "" if prefork else "1"}
    args = ("environment=system", "~register", "job.source_dir=src", "job.script=env.py")
    proc = mltrain(*args, "+hydra.job.env_set.FROM_HYDRA=set-by-hydra", env=env)
    assert proc.returncode == 0, proc.output
    assert "FROM_HYDRA=set-by-hydra" in proc.stdout
    assert not (project / "job-started").exists()
    proc = mltrain(*args, "+hydra.callbacks.mark._target_=mark.Mark", env=env)
    assert proc.returncode == 0, proc.output
    assert "FROM_HYDRA=-" in proc.stdout
    assert (project / "job-started").exists()


@pytest.mark.parametrize("flag", [["--cfg", "job"], ["--cfg", "hydra"], ["--cfg", "all"], ["--info", "config"]])
def test_token_is_redacted_where_hydra_prints_the_config(mltrain, flag):
    proc = mltrain("+compute=cluster", "compute.token=s3cret-t0ken", *flag)
    assert proc.returncode == 0, proc.output
    assert "s3cret-t0ken" not in proc.output
    assert "<redacted>" in proc.stdout


def test_a_composing_child_that_crashes_says_why(monkeypatch, capfd):
    """The forked child that composes ends with os._exit: an error it did not expect is printed
    (with its traceback) before it ends, not swallowed into a bare exit code 1."""
    from mltrain.config import app, prefork

    def broken(self, argv):
        raise RuntimeError("the install is incomplete")

    monkeypatch.setattr(app.App, "main", broken)
    payload, code, warm = prefork.compose_forked(["~register"], lambda: "warm")
    assert (payload, code, warm) == (None, 1, "warm")
    err = capfd.readouterr().err
    assert "RuntimeError: the install is incomplete" in err and "Traceback" in err


def test_a_built_in_plugin_that_fails_is_made_once_and_reported_as_a_config_error(monkeypatch):
    """A class of mltrain made from a plain node without Hydra: a constructor that fails is reported as
    instantiate's failures are (naming the group, the class and the cause), not run a second time."""
    import mltrain.compute.local as local_module
    from mltrain.compute.base import ComputeTarget
    from mltrain.errors import ConfigError
    from mltrain.plugin import instantiate_plugin

    made = []

    class Exploding(local_module.LocalCompute):
        def __init__(self, size: int = 1) -> None:
            made.append(size)
            raise ValueError("size must be even")

    monkeypatch.setattr(local_module, "Exploding", Exploding, raising=False)
    node = {"_target_": "mltrain.compute.local.Exploding", "size": 3}
    with pytest.raises(ConfigError, match=r"compute: cannot create mltrain.compute.local.Exploding: size must be even"):
        instantiate_plugin(node, "compute", ComputeTarget)
    assert made == [3]
