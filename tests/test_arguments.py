"""job.arguments reach argparse scripts as written: booleans as store_true flags, lists as is."""

from __future__ import annotations

import json

import pytest
from support import write_script

from mltrain.errors import ConfigError
from mltrain.runs.arguments import job_argv

ARGV = "import json, sys\nprint('argv=' + json.dumps(sys.argv[1:]))\n"
BASE = ("environment=system", "~register", "job.source_dir=src", "job.script=argv.py")


def _argv(proc) -> list[str]:
    assert proc.returncode == 0, proc.output
    line = next(x for x in proc.stdout.splitlines() if x.startswith("argv="))
    return json.loads(line[len("argv=") :])


def test_true_is_a_bare_flag_and_false_is_left_out(mltrain, project):
    write_script(project / "src", "argv.py", ARGV)
    proc = mltrain(*BASE, "job.arguments=null", "+job.arguments.verbose=true", "+job.arguments.dry=false")
    assert _argv(proc) == ["--verbose"]
    proc = mltrain(
        *BASE, "job.arguments=null", "+job.arguments.verbose=true", "+job.arguments.dry=false", "job.bool_style=value"
    )
    assert _argv(proc) == ["--verbose", "true", "--dry", "false"]


def test_a_list_is_passed_as_is_from_the_command_line_and_a_config(mltrain, cli_json, project):
    write_script(project / "src", "argv.py", ARGV)
    # the iris job's arguments are a mapping: a list replaces it
    proc = mltrain(*BASE, "job.arguments=[--C,2,--verbose]")
    assert _argv(proc) == ["--C", "2", "--verbose"]
    run = cli_json("runs", "list")[0]
    assert run["overrides"] == [*BASE, "job.arguments=[--C,2,--verbose]"]
    (project / "conf" / "job").mkdir(parents=True)
    (project / "conf" / "job" / "listy.yaml").write_text(
        "source_dir: src\nscript: argv.py\narguments: [--alpha, 0.5, --flag]\n"
    )
    proc = mltrain("environment=system", "job=listy")
    assert _argv(proc) == ["--alpha", "0.5", "--flag"]


def test_a_nested_mapping_is_a_config_error_with_a_hint(mltrain, project):
    write_script(project / "src", "argv.py", ARGV)
    proc = mltrain(*BASE, "+job.arguments.opt={lr:0.1}")
    assert proc.returncode == 2
    assert "job.arguments.opt is a nested mapping" in proc.stderr and "hint:" in proc.stderr
    assert not (project / ".mltrain").exists()  # refused before anything was recorded


def test_job_argv_forms():
    assert job_argv({"a": 1, "b": [1, 2], "c": None, "-x": "y"}, ["--z"]) == [
        "--a",
        "1",
        "--b",
        "1",
        "2",
        "-x",
        "y",
        "--z",
    ]
    assert job_argv(["--C", 2], None) == ["--C", "2"]
    with pytest.raises(ConfigError):
        job_argv({"a": True}, None, bool_style="yes")
    with pytest.raises(ConfigError):
        job_argv("--C 2", None)
