"""Overhead of a run on an SSH host: `python -m mltrain +compute=ssh` on a no-op script vs a bare
`ssh HOST python3 noop.py` (OpenSSH client, the script already on the host), interleaved in the same run,
against a real sshd started on 127.0.0.2 for the benchmark. Also reports, for one run in process,
the SSH round trips (commands) and the bytes uploaded with a cold and with a warm blob cache.

    python bench/ssh_bench.py [--repeats 10]

Reported as the ratio mltrain-over-SSH / bare ssh (a command line run again, whose hosts are connected
while its config is composed, and one run for the first time), and the overhead in seconds; and one run through SSH
compute in a process that already imported mltrain (a fresh target: connect, probe, run folder, start,
follow, collect, clean up) against the bare ssh command, which is what going to a host costs.

``--sweep``: instead, a sweep of ``--trials`` (16) iris SVC trials (`python -m mltrain -m`) over two
SSH hosts (sshd on 127.0.0.2 and 127.0.0.3, one slot each, so two children at a time) vs the same sweep
on local compute, two at a time (with forking from pre-warmed interpreters, and with it off), interleaved,
median of ``--repeats`` (3). Every side runs the same interpreter (``environment=system``; the hosts'
``python`` is this one), so the ratio is what distributing the trials over SSH costs on one machine.

    python bench/ssh_bench.py --sweep [--trials 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))
sys.path.insert(0, str(BENCH.parent / "tests" / "ssh"))  # the loopback sshd helper of the test suite
from common import interleaved, job_overrides, median, save  # noqa: E402
from loopback_sshd import keygen, start_sshd, stop_host  # noqa: E402


def in_process_run_s(work: Path, host_entry: dict, known: Path, repeats: int) -> list[float]:
    """Seconds of one run through SSH compute in a process that already imported mltrain (what a
    ``mltrain.submit`` or a sweep's trial pays): a new target connects to the host, probes it, makes
    the run folder, starts the no-op job, follows it to its end, collects and cleans up."""
    import time as _time
    from dataclasses import asdict

    from conformance import RecordingSink

    from mltrain.compute.base import RunSpec
    from mltrain.compute.ssh import SSHCompute
    from mltrain.config.schema import EnvironmentConfig
    from mltrain.environments.resolve import resolve
    from mltrain.environments.shim import ensure_shim
    from mltrain.environments.spec import EnvSpec
    from mltrain.workspace import Workspace, WorkspaceSettings
    from mltrain.workspace.runs import new_run_id

    ws = Workspace(WorkspaceSettings.resolve(str(work / "ws-timed")))
    snap = ws.snapshots.take(work / "src")
    env = resolve(EnvSpec.from_config({**asdict(EnvironmentConfig()), "name": "system", "build": "system"}), ws)
    SSHCompute(hosts=[host_entry], known_hosts=str(known)).close()  # imports (paramiko) not timed
    times = []
    for _ in range(repeats + 1):
        run_id = new_run_id()
        run_dir = ws.run_dir(run_id)
        run_dir.mkdir(parents=True)
        spec = RunSpec(run_id, "bench", run_dir, snap.id, "noop.py", [], {}, ensure_shim())
        start = _time.perf_counter()
        target = SSHCompute(hosts=[host_entry], known_hosts=str(known))
        try:
            target.check()
            built = target.prepare(ws, env, lambda line: None)
            target.upload(ws, spec)
            handle = target.start(spec, built, RecordingSink())
            assert handle.wait(120) == 0
            target.collect(spec, handle)
            target.cleanup(spec, handle)
        finally:
            target.close()
        times.append(_time.perf_counter() - start)
    return times[1:]  # the first warms the host's blob cache


def in_process_costs(work: Path, host_entry: dict, known: Path) -> dict[str, dict[str, int]]:
    """Round trips and upload bytes of one run with a cold blob cache, then one with a warm cache."""
    from conformance import RecordingSink

    from mltrain.compute.base import RunSpec
    from mltrain.compute.ssh import SSHCompute
    from mltrain.environments.resolve import resolve
    from mltrain.environments.shim import ensure_shim
    from mltrain.environments.spec import EnvSpec
    from mltrain.workspace import Workspace, WorkspaceSettings
    from mltrain.workspace.runs import new_run_id

    ws = Workspace(WorkspaceSettings.resolve(str(work / "ws-inproc")))
    snap = ws.snapshots.take(work / "src")
    from dataclasses import asdict

    from mltrain.config.schema import EnvironmentConfig

    env = resolve(EnvSpec.from_config({**asdict(EnvironmentConfig()), "name": "system", "build": "system"}), ws)
    target = SSHCompute(hosts=[host_entry], known_hosts=str(known))
    out: dict[str, dict[str, int]] = {}
    try:
        built = target.prepare(ws, env, lambda line: None)
        remote = target.remotes[0]
        for label in ("cold cache", "warm cache"):
            trips, sent = remote.round_trips, target.stats["bytes_sent"]
            run_id = new_run_id()
            run_dir = ws.run_dir(run_id)
            run_dir.mkdir(parents=True)
            spec = RunSpec(run_id, "bench", run_dir, snap.id, "noop.py", [], {}, ensure_shim())
            target.upload(ws, spec)
            handle = target.start(spec, built, RecordingSink())
            assert handle.wait(120) == 0
            target.collect(spec, handle)
            target.cleanup(spec, handle)
            sent = target.stats["bytes_sent"] - sent
            out[label] = {"round_trips": remote.round_trips - trips, "bytes_uploaded": sent}
    finally:
        target.close()
    return out


TRAIN = """
import argparse

from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from mltrain import Run

parser = argparse.ArgumentParser()
parser.add_argument("--C", type=float, default=1.0)
args = parser.parse_args()
x, y = datasets.load_iris(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
Run.get_context().log("accuracy", SVC(C=args.C).fit(x_train, y_train).score(x_test, y_test))
"""

JOB = "name: bench-ssh-sweep\nsource_dir: src\nscript: train.py\narguments:\n  C: 1.0\n"


def sweep_bench(trials: int, repeats: int) -> None:
    """The ``--sweep`` benchmark: a ``trials``-trial sweep over two SSH hosts vs local compute."""
    work = Path(tempfile.mkdtemp(prefix="mltrain-bench-ssh-sweep-"))
    (work / "src").mkdir()
    (work / "src" / "train.py").write_text(TRAIN)
    (work / "conf" / "job").mkdir(parents=True)
    (work / "conf" / "job" / "bench.yaml").write_text(JOB)
    client_key = work / "client_key"
    keygen(client_key)
    hosts = [start_sshd(work / f"host-{n}", addr, client_key) for n, addr in enumerate(("127.0.0.2", "127.0.0.3"))]
    try:
        known = work / "known_hosts"
        known.write_text("".join(h.known_hosts_line() for h in hosts))
        entries = ",".join(
            "{" + ",".join(f"{k}:{v}" for k, v in h.entry(slots=1, python=sys.executable).items()) + "}" for h in hosts
        )
        values = ",".join(f"{10 ** (-2 + 4 * i / max(trials - 1, 1)):.6g}" for i in range(trials))
        sweep = [sys.executable, "-m", "mltrain", "-m", "environment=system", "job=bench", "sweep.register=none"]
        sweep += ["experiment_name=bench", "sweep.primary_metric.name=accuracy", f"job.arguments.C={values}"]
        ssh = [*sweep, "+compute=ssh", f"compute.hosts=[{entries}]", f"compute.known_hosts={known}"]
        local = [*sweep, "sweep.max_concurrent_runs=2"]
        cases = {
            "sweep over 2 SSH hosts": ssh,  # max_concurrent_runs unset: the hosts' 2 slots
            "sweep local (prewarmed)": local,
            "sweep local, prewarm off": [*local, "sweep.prewarm=false"],
        }
        env = {"MLTRAIN_WORKSPACE": str(work / "ws")}
        interleaved(cases, 1, work, env)  # warm-up: helper on the hosts, blob caches, .pyc files
        times = interleaved(cases, repeats, work, env)
    finally:
        for host in hosts:
            stop_host(host)
    med = {name: median(v) for name, v in times.items()}
    ours = med["sweep over 2 SSH hosts"]
    print(f"{trials} trials, 2 at a time; median of {repeats}")
    print(f"{'case':<26} {'median s':>9} {'min s':>7}")
    for name, values_s in times.items():
        print(f"{name:<26} {med[name]:>9.2f} {min(values_s):>7.2f}")
    ratio = ours / med["sweep local (prewarmed)"]
    ratio_cold = ours / med["sweep local, prewarm off"]
    print(f"\nratio sweep over SSH / local sweep: {ratio:.2f}x (prewarm off: {ratio_cold:.2f}x)")
    print(f"SSH cost per trial: {(ours - med['sweep local (prewarmed)']) / trials:.3f} s")
    path = save(
        "ssh_bench_sweep",
        {
            "trials": trials,
            "repeats": repeats,
            "median_s": med,
            "all_s": times,
            "ssh_over_local": ratio,
            "ssh_over_local_prewarm_off": ratio_cold,
        },
    )
    print(f"results: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=None, help="default: 10 (3 with --sweep)")
    parser.add_argument("--sweep", action="store_true", help="a sweep over two SSH hosts vs the same sweep locally")
    parser.add_argument("--trials", type=int, default=16, help="trials of the --sweep benchmark")
    args = parser.parse_args()
    if args.sweep:
        sweep_bench(args.trials, args.repeats or 3)
        return
    args.repeats = args.repeats or 10
    work = Path(tempfile.mkdtemp(prefix="mltrain-bench-ssh-"))
    (work / "src").mkdir()
    (work / "src" / "noop.py").write_text("pass\n")
    client_key = work / "client_key"
    keygen(client_key)
    host = start_sshd(work / "host", "127.0.0.2", client_key)
    try:
        known = work / "known_hosts"
        known.write_text(host.known_hosts_line())
        entry = host.entry(slots=1)
        hosts = "[{" + ",".join(f"{k}:{v}" for k, v in entry.items()) + "}]"
        ssh = ["ssh", "-i", str(client_key), "-p", str(host.port), "-o", f"UserKnownHostsFile={known}"]
        ssh += ["-o", "BatchMode=yes", f"root@{host.addr}"]
        local = [sys.executable, "-m", "mltrain", *job_overrides("noop.py"), "experiment_name=bench"]
        over_ssh = [*local, "+compute=ssh", f"compute.hosts={hosts}", f"compute.known_hosts={known}"]
        from mltrain.config.recall import file_name
        from mltrain.environments.cache import cache_root

        # nothing remembered: neither its hosts' connections nor its composed config
        composed = cache_root() / file_name(over_ssh[3:], cwd=str(work))
        forget = ["sh", "-c", 'rm -f "$0" "$1" && shift && exec "$@"', str(cache_root() / "preconnect.json")]
        forget.append(str(composed))
        cases = {
            "ssh host python3 noop.py": [*ssh, "python3", str(work / "src" / "noop.py")],
            "mltrain +compute=ssh": over_ssh,  # run again: connected while its config is composed
            "  same, new command line": [*forget, *over_ssh],  # nothing remembered: connects after composing
            "mltrain (local)": local,
        }
        env = {"MLTRAIN_WORKSPACE": str(work / "ws")}
        interleaved(cases, 1, work, env)  # warm-up: helper on the host, caches hot
        cpu: dict[str, list[float]] = {}
        times = interleaved(cases, args.repeats, work, env, cpu=cpu)
        costs = in_process_costs(work, {**entry, "workdir": str(work / "cold-workdir")}, known)
        timed = in_process_run_s(work, entry, known, args.repeats)
    finally:
        stop_host(host)
    med = {name: median(v) for name, v in times.items()}
    bare = med["ssh host python3 noop.py"]
    ours = med["mltrain +compute=ssh"]
    print(f"{'case':<28} {'median s':>9} {'min s':>7} {'CPU s':>6}  (CPU: the whole machine's, median)")
    for name, values in times.items():
        print(f"{name:<28} {med[name]:>9.3f} {min(values):>7.3f} {median(cpu[name]):>6.2f}")
    print(f"\nratio mltrain over SSH / bare ssh: {ours / bare:.2f}; overhead {ours - bare:.3f} s per run")
    print(f"the same, a command line run for the first time: {med['  same, new command line'] / bare:.2f}")
    print(f"mltrain over SSH minus mltrain local: {ours - med['mltrain (local)']:.3f} s")
    one = median(timed)
    print(f"one run through SSH compute in process (connect to cleanup): {one:.3f} s, {one / bare:.2f}x bare ssh")
    for label, c in costs.items():
        print(f"one run, {label}: {c['round_trips']} SSH commands, {c['bytes_uploaded']} bytes uploaded")
    path = save(
        "ssh_bench",
        {
            "repeats": args.repeats,
            "median_s": med,
            "median_machine_cpu_s": {name: median(v) for name, v in cpu.items()},
            "ratio_to_bare_ssh": ours / bare,
            "new_command_line_ratio_to_bare_ssh": med["  same, new command line"] / bare,
            "overhead_s": ours - bare,
            "per_run": costs,
            "in_process_run_s": timed,
            "in_process_over_bare_ssh": one / bare,
            "cpus": os.cpu_count(),
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
