"""A command line run again takes the config it composed to last time (no Hydra, no composing), and
only while nothing that composition read has changed: config files, the project's ``conf/`` folder,
environment variables, the code. The remembered file is untrusted: another user's, or one others may
write, is ignored."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support import write_script

from mltrain.config import recall

ECHO = "import sys\nprint('ARGS', *sys.argv[1:])\n"
JOB = "name: recall\nsource_dir: src\nscript: echo.py\narguments:\n  penalty: ${oc.env:PENALTY,1}\n"
ARGV = ["job=mine", "environment=system"]


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache folder of the test's own: the suite's is shared by parallel tests, whose runs prune it."""
    monkeypatch.setenv("MLTRAIN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def job(project: Path) -> Path:
    write_script(project / "src", "echo.py", ECHO)
    conf = project / "conf" / "job"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text(JOB)
    return conf / "mine.yaml"


def _args(proc) -> str:
    assert proc.returncode == 0, proc.output
    return next(line for line in proc.stdout.splitlines() if line.startswith("ARGS"))


def _remembered(argv: list[str]) -> Path:
    return Path(os.environ["MLTRAIN_CACHE_DIR"]) / recall.file_name(argv)  # the test's cwd is the run's


def _tamper(argv: list[str], penalty: int) -> None:
    """Change the remembered config's argument: a run that prints it took the remembered config."""
    path = _remembered(argv)
    entry = json.loads(path.read_text())
    entry["payload"]["config"]["job"]["arguments"]["penalty"] = penalty
    path.write_text(json.dumps(entry))


def test_a_command_line_run_again_takes_its_remembered_config_until_what_it_read_changes(mltrain, job, project):
    env = {"PENALTY": "3"}
    assert _args(mltrain(*ARGV, env=env)) == "ARGS --penalty 3"
    assert _remembered(ARGV).is_file()
    _tamper(ARGV, 77)
    assert _args(mltrain(*ARGV, env=env)) == "ARGS --penalty 77"  # taken as remembered: nothing composed
    shell = {**env, "PWD": "/elsewhere", "SHLVL": "7", "_": "/bin/x"}  # what a shell sets (sh -c adds PWD)
    assert _args(mltrain(*ARGV, env=shell)) == "ARGS --penalty 77"

    # an environment variable changed: composed again (and remembered again)
    assert _args(mltrain(*ARGV, env={"PENALTY": "4"})) == "ARGS --penalty 4"
    _tamper(ARGV, 78)
    assert _args(mltrain(*ARGV, env={"PENALTY": "4"})) == "ARGS --penalty 78"

    # a config file edited
    job.write_text(JOB.replace("${oc.env:PENALTY,1}", "5"))
    assert _args(mltrain(*ARGV, env=env)) == "ARGS --penalty 5"

    # a file added to the project's conf/ (it may be a new option of a group the config uses)
    _tamper(ARGV, 79)
    (job.parent / "other.yaml").write_text("name: other\n")
    assert _args(mltrain(*ARGV, env=env)) == "ARGS --penalty 5"

    # another command line (or the same one in another folder) has its own
    assert _args(mltrain(*ARGV, "job.arguments.penalty=6", env=env)) == "ARGS --penalty 6"
    assert _args(mltrain(*ARGV, env=env)) == "ARGS --penalty 5"


def test_a_project_conf_folder_that_appears_is_read(mltrain, project):
    write_script(project / "src", "env.py", "import os\nprint('ARGS', os.environ.get('FROM_CONF', '-'))\n")
    argv = ["job.source_dir=src", "job.script=env.py", "environment=system", "~register"]
    assert _args(mltrain(*argv)) == "ARGS -"
    (project / "conf" / "environment").mkdir(parents=True)  # the project's environment=system replaces mltrain's
    mine = "name: mine\nbuild: system\nenv_vars:\n  FROM_CONF: project\n"
    (project / "conf" / "environment" / "system.yaml").write_text(mine)
    assert _args(mltrain(*argv)) == "ARGS project"


@pytest.mark.parametrize(
    "hostile",
    ["group-writable", "damaged", "a folder", "not a mapping"],
)
def test_a_remembered_config_others_could_write_or_that_is_damaged_is_not_taken(mltrain, job, hostile):
    assert _args(mltrain(*ARGV)) == "ARGS --penalty 1"
    _tamper(ARGV, 66)
    path = _remembered(ARGV)
    if hostile == "group-writable":
        path.chmod(0o664)
    elif hostile == "damaged":
        path.write_text(path.read_text()[:-20])
    elif hostile == "a folder":
        path.unlink()
        path.mkdir()
    else:
        path.write_text("[1, 2]")
    assert _args(mltrain(*ARGV)) == "ARGS --penalty 1"
    if hostile == "a folder":
        path.rmdir()


def test_a_config_with_a_changing_resolver_is_composed_every_time(mltrain, job):
    argv = [*ARGV, "+job.arguments.stamp=${now:%H%M%S%f}"]
    first, second = _args(mltrain(*argv)), _args(mltrain(*argv))
    assert first != second
    assert not _remembered(argv).exists()


def test_a_config_reading_a_variable_the_digest_leaves_out_is_not_remembered():
    assert recall.resolvers({"a": ["${oc.env:HOME}", "${job.name}"]}) <= recall.STEADY_RESOLVERS
    for value in ("${oc.env:PWD}", "${oc.env: OLDPWD,/}", "x${oc.env:_}"):
        assert not recall.resolvers({"a": {"b": value}}) <= recall.STEADY_RESOLVERS


def test_a_config_with_a_secret_is_never_written_to_the_cache(project):
    argv = ["+compute=cluster", "compute.token=s3cret"]
    payload = {"config": {"compute": {"token": "s3cret"}}, "overrides": argv, "env": {}}
    recall.remember(argv, payload, {"env": "x", "stamps": []})
    assert not _remembered(argv).exists()
    payload["config"]["compute"]["token"] = None
    recall.remember(argv, payload, {"env": "x", "stamps": []})
    assert _remembered(argv).exists()
    _remembered(argv).unlink()


def test_only_the_newest_command_lines_are_kept(project):
    for n in range(recall.KEEP + 3):
        recall.remember([f"a={n}"], {"config": {}, "overrides": [], "env": {}}, {"env": "x", "stamps": []})
    kept = list(Path(os.environ["MLTRAIN_CACHE_DIR"]).glob(f"{recall.PREFIX}*"))
    assert len(kept) <= recall.KEEP and _remembered([f"a={recall.KEEP + 2}"]) in kept


def test_a_file_another_environment_hard_links_is_unchanged_an_edited_one_is_not(tmp_path):
    """uv installs by hard-linking from its cache: another venv linking a module file changes its ctime
    and link count, not what composing reads."""
    module = tmp_path / "module.py"
    module.write_text("X = 1\n")
    before = recall.stamp(str(module))
    os.link(module, tmp_path / "linked.py")
    assert recall.stamp(str(module)) == before
    module.write_text("X = 22\n")
    assert recall.stamp(str(module)) != before
