"""One container recipe: what the Docker SDK creates (the docker compute and deploy targets) and the
``docker run`` command line an SSH host runs (a job of ``build: docker``) say the same thing."""

from __future__ import annotations

from mltrain.environments.container import ContainerSpec


def _flags(argv: list[str]) -> dict[str, list[str]]:
    """``--name value`` pairs of a ``docker run`` command line (``--rm``/``--init`` map to [])."""
    out: dict[str, list[str]] = {}
    i = 2
    while argv[i].startswith("--"):
        if argv[i] in ("--rm", "--init"):
            out[argv[i]] = []
            i += 1
            continue
        out.setdefault(argv[i], []).append(argv[i + 1])
        i += 2
    return out


def test_the_sdk_and_the_cli_get_the_same_container(docker_engine, docker_client, busybox_image, tmp_path):
    spec = ContainerSpec(
        image=busybox_image,
        command=["sh", "-c", "exit 0"],
        name="mltrain-recipe-check",
        working_dir="/mltrain/run",
        environment={"MLTRAIN_RUN_ID": "r1", "SECRET": "not on the command line", "PATH": "/usr/bin:/bin"},
        labels={"mltrain.run_id": "r1", "mltrain.experiment": "e"},
        binds={str(tmp_path): {"bind": "/mltrain/run", "mode": "rw"}},
        user="1234:1234",
        cpus=0.5,
        memory_gb=0.25,
    )
    api = docker_client.api  # type: ignore[attr-defined]
    cid = spec.create(api)
    try:
        info = api.inspect_container(cid)
    finally:
        api.remove_container(cid, force=True)
    config, host = info["Config"], info["HostConfig"]

    argv, values = spec.run_argv("docker")
    flags = _flags(argv)
    assert argv[:2] == ["docker", "run"] and "--rm" in flags
    assert argv[-len(spec.command) - 1 :] == [config["Image"], *config["Cmd"]]
    assert host["Init"] is True and "--init" in flags  # docker-init as PID 1: signals reach the program
    assert flags["--name"] == [info["Name"].lstrip("/")]
    assert flags["--user"] == [config["User"]] == ["1234:1234"]
    assert flags["--workdir"] == [config["WorkingDir"]]
    assert flags["--network"] == [host["NetworkMode"]]
    assert sorted(flags["--volume"]) == sorted(host["Binds"])
    assert {k: v for k, v in config["Labels"].items() if k.startswith("mltrain.")} == dict(
        item.split("=", 1) for item in flags["--label"]
    )
    assert float(flags["--cpus"][0]) * 1e9 == host["NanoCpus"]
    assert flags["--memory"] == [f"{host['Memory']}b"] and flags["--memory-swap"] == [f"{host['MemorySwap']}b"]
    # the same environment (HOME=/tmp for a uid without a home), values by name off the command line
    cli_env = dict(item.split("=", 1) if "=" in item else (item, values[item]) for item in flags["--env"])
    sdk_env = dict(item.split("=", 1) for item in config["Env"])
    assert cli_env == {k: v for k, v in sdk_env.items() if k in cli_env} and cli_env["HOME"] == "/tmp"
    assert set(cli_env) == set(spec.env) and "SECRET" in flags["--env"]
    assert not any("not on the command line" in a for a in argv)  # a value never shows in a process list
