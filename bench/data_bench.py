"""Data assets, part 1: `mltrain data create` and `mltrain data download` against their peers, in the
same run, on 1 GiB as 1,000 files and as one file.

- create: `mltrain data create` into a fresh workspace vs `sha256sum` of every file + `cp -r` of the
  folder (what the disk allows for reading, hashing and writing the same bytes), and the same with
  `openssl dgst -sha256` (OpenSSL's sha256, which mltrain's hashlib uses too, is several times faster
  than coreutils' on CPUs with SHA instructions);
- download from an S3-compatible server (moto's `moto_server` on loopback, as the tests use): `mltrain
  data download` of an s3:// version vs boto3 (`download_file` per object, its default transfer
  threads), s3fs (`get` of the prefix) and boto3 `get_object` streamed to a file (one GET per
  object, as mltrain does), fetching the same objects, each a fresh process;
- the peak RSS of the mltrain process while it moves 1 GiB;
- a job input delivered to an SSH host (a real sshd on 127.0.0.2, as the tests start it): the first
  delivery, timed as a run whose host cache is empty (no files, no spare copy) minus the same run
  without the input, vs `rsync -a` of the same folder over the same sshd (OpenSSH client) into an
  empty folder; and what a second run adds (its host has the data: 0 bytes move); the CPU seconds of
  the deliver step alone and of one ``rsync -a`` (this side and the host's, medians of ``--repeats``,
  interleaved: on a shared machine they say more than wall time); the peak RSS of the driver
  (``python -m mltrain``) while it sends the data.

    python bench/data_bench.py [--repeats 3] [--skip-s3] [--skip-ssh] [--only-ssh] [--only-s3] [--size-mb 1024]

Cases are interleaved (median of ``--repeats``); before each case the outputs of the last one are
removed (untimed). Results go to bench/results/data_bench.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests" / "data"))  # the moto server helper of the test suite
from common import interleaved, median, save, wall  # noqa: E402
from moto_s3 import start_moto, stop_moto  # noqa: E402

GIB = 1 << 30
MLTRAIN = [sys.executable, "-m", "mltrain.cli.main"]


def make_data(root: Path, total: int = GIB) -> dict[str, Path]:
    """``total`` bytes (1 GiB) as 1,000 files and as one file, of random bytes (nothing dedups)."""
    many, one = root / "many", root / "one"
    many.mkdir(parents=True)
    one.mkdir()
    per_file = total // 1000
    with open(one / "data.bin", "wb") as big:
        for i in range(1000):
            block = os.urandom(per_file if i < 999 else total - 999 * per_file)
            (many / f"part-{i:04d}.bin").write_bytes(block)
            big.write(block)
    return {"1000 files": many, "1 file": one}


def peak_rss_mb(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Peak RSS (MB) of ``cmd`` run as the only child of a fresh interpreter."""
    probe = (
        "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "sys.exit(p.returncode) if p.returncode else print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *cmd], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return int(out.stdout.split()[-1]) / 1024


def clear(*paths: Path) -> None:
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)


def bench_create(work: Path, data: dict[str, Path], repeats: int) -> dict[str, dict[str, float]]:
    results = {}
    ws, copy = work / "ws", work / "copy"
    for label, src in data.items():
        cases = {
            "mltrain data create": [*MLTRAIN, "--workspace", str(ws), "data", "create", "bench", str(src)],
            "sha256sum + cp -r": [
                "bash", "-c", f"find {src} -type f -print0 | xargs -0 sha256sum >/dev/null && cp -r {src} {copy}"
            ],
            "openssl sha256 + cp -r": [
                "bash", "-c",
                f"find {src} -type f -print0 | xargs -0 openssl dgst -sha256 >/dev/null && cp -r {src} {copy}",
            ],
        }  # fmt: skip
        times = interleaved(cases, repeats, work, settle=lambda: clear(ws, copy))
        clear(ws, copy)
        rss = peak_rss_mb(cases["mltrain data create"], work)
        clear(ws)
        m, peer = median(times["mltrain data create"]), median(times["sha256sum + cp -r"])
        fast = median(times["openssl sha256 + cp -r"])
        results[label] = {
            "mltrain_s": m, "sha256sum_cp_s": peer, "speed_ratio": peer / m,
            "openssl_cp_s": fast, "speed_ratio_vs_openssl": fast / m, "mltrain_peak_rss_mb": rss,
        }  # fmt: skip
        print(f"create, {label}: mltrain {m:.2f} s, sha256sum + cp -r {peer:.2f} s ({peer / m:.2f}x their speed), "
              f"openssl sha256 + cp -r {fast:.2f} s ({fast / m:.2f}x); peak RSS {rss:.0f} MB", flush=True)  # fmt: skip
    return results


BOTO3_GET = """
import os, sys, boto3
s3 = boto3.client("s3")
mode, bucket, prefix, dest = sys.argv[1:5]
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for obj in page.get("Contents", []):
        target = os.path.join(dest, obj["Key"][len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if mode == "download_file":  # ranged parts in parallel threads (its TransferConfig defaults)
            s3.download_file(bucket, obj["Key"], target)
            continue
        with open(target, "wb") as out:  # one GET, streamed
            for chunk in s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].iter_chunks(1 << 20):
                out.write(chunk)
"""

S3FS_GET = """
import sys, s3fs
s3fs.S3FileSystem().get(f"{sys.argv[1]}/{sys.argv[2]}", sys.argv[3] + "/", recursive=True)
"""


def bench_download(work: Path, data: dict[str, Path], repeats: int) -> dict[str, dict[str, float]]:
    server = start_moto(work)
    env = server.env()
    os.environ.update(env)  # the upload below, and every command the bench starts
    results = {}
    try:
        bucket = server.bucket("bench")
        client = server.client()
        ws, dest = work / "ws-s3", work / "dest"
        for n, (label, src) in enumerate(data.items()):
            prefix = f"set{n}/"
            for f in sorted(src.iterdir()):
                client.upload_file(str(f), bucket, prefix + f.name)
            subprocess.run([*MLTRAIN, "--workspace", str(ws), "data", "create", f"set{n}", f"s3://{bucket}/{prefix}"],
                           check=True, capture_output=True)  # fmt: skip
            cases = {
                "mltrain data download": [*MLTRAIN, "--workspace", str(ws), "data", "download", f"set{n}", str(dest)],
                "boto3 download_file": [sys.executable, "-c", BOTO3_GET, "download_file", bucket, prefix, str(dest)],
                "s3fs get": [sys.executable, "-c", S3FS_GET, bucket, prefix.rstrip("/"), str(dest)],
                "boto3 get_object": [sys.executable, "-c", BOTO3_GET, "get_object", bucket, prefix, str(dest)],
            }
            times = interleaved(cases, repeats, work, settle=lambda: clear(dest))
            clear(dest)
            rss = peak_rss_mb(cases["mltrain data download"], work)
            clear(dest)
            m = median(times["mltrain data download"])
            row = {"mltrain_s": m, "mltrain_peak_rss_mb": rss}
            shown = []
            for peer in ("boto3 download_file", "s3fs get", "boto3 get_object"):
                row[f"{peer}_s"] = median(times[peer])
                row[f"time_ratio_vs_{peer}"] = m / median(times[peer])
                shown.append(f"{peer} {median(times[peer]):.2f} s ({m / median(times[peer]):.2f}x)")
            results[label] = row
            print(f"download, {label}: mltrain {m:.2f} s, {', '.join(shown)}; peak RSS {rss:.0f} MB", flush=True)
    finally:
        stop_moto(server)
    return results


def host_cpu_s(pid: int) -> float:
    """CPU seconds of process ``pid`` and of its children it has reaped (an sshd: its finished sessions)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def delivery_in_process(
    ws_root: Path, asset: str, entry: dict, known: Path, clear_host: Callable[[], None], sshd_pid: int
) -> dict:
    """The ``deliver`` step alone, in process (no run around it): with the host's cache empty, then full;
    with the CPU seconds it cost this process (the driver) and the host (its sshd's sessions, reaped once
    the connection closes: a CPU count that another process's load does not inflate as it does wall time)."""
    from mltrain.compute.base import RunSpec
    from mltrain.compute.ssh import SSHCompute
    from mltrain.data.configs import InputConfig
    from mltrain.environments.shim import ensure_shim
    from mltrain.runs.inputs import resolve_input
    from mltrain.workspace import Workspace, WorkspaceSettings
    from mltrain.workspace.runs import new_run_id

    ws = Workspace(WorkspaceSettings.resolve(str(ws_root)))
    inp = resolve_input(ws, "d", InputConfig(path=f"data:{asset}")).spec
    snap = ws.snapshots.take(ws_root.parent / "src")
    out = {}
    clear_host()
    for label in ("empty host cache", "host has it"):
        target = SSHCompute(hosts=[entry], known_hosts=str(known))
        try:
            run_id = new_run_id()
            run_dir = ws.run_dir(run_id)
            spec = RunSpec(run_id, "bench", run_dir, snap.id, "noop.py", [], {}, ensure_shim(), inputs=(inp,))
            spec.run_dir.mkdir(parents=True)
            target.upload(ws, spec)
            host0, cpu0, start = host_cpu_s(sshd_pid), time.process_time(), time.perf_counter()
            delivered = target.deliver(ws, spec, lambda line: None)
            took, driver = time.perf_counter() - start, time.process_time() - cpu0
            target.cleanup(spec, None)
        finally:
            target.close()
        time.sleep(0.5)  # the sessions end and are reaped
        out[label] = {"s": took, "bytes": delivered.moved.bytes, "driver_cpu_s": driver}
        out[label]["host_cpu_s"] = host_cpu_s(sshd_pid) - host0  # with the cleanup's few ms
    return out


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each key's median over ``rows``."""
    return {key: median([row[key] for row in rows]) for key in rows[0]}


def rsync_cpu(cmd: list[str], sshd_pid: int) -> dict[str, float]:
    """CPU seconds of one ``rsync -a`` (its client and ssh; the host's rsync and sshd)."""
    host0, kids0 = host_cpu_s(sshd_pid), children_cpu_s()
    subprocess.run(cmd, check=True, capture_output=True)
    time.sleep(0.5)
    return {"driver_cpu_s": children_cpu_s() - kids0, "host_cpu_s": host_cpu_s(sshd_pid) - host0}


def bench_ssh_inputs(work: Path, data: dict[str, Path], repeats: int) -> dict[str, dict[str, float]]:
    sys.path.insert(0, str(BENCH.parent / "tests" / "ssh"))  # the loopback sshd helper of the test suite
    from loopback_sshd import keygen, start_sshd, stop_host

    key = work / "client_key"
    keygen(key)
    host = start_sshd(work / "host", "127.0.0.2", key)
    results = {}
    try:
        known = work / "known_hosts"
        known.write_text(host.known_hosts_line())
        (work / "src").mkdir(exist_ok=True)
        (work / "src" / "noop.py").write_text("pass\n")
        entry = "{" + ",".join(f"{k}:{v}" for k, v in host.entry(slots=1, python=sys.executable).items()) + "}"
        run = [sys.executable, "-m", "mltrain", "environment=system", "job.source_dir=src", "job.script=noop.py"]
        run += ["~register", "job.arguments=[]", "+compute=ssh", f"compute.hosts=[{entry}]"]
        run.append(f"compute.known_hosts={known}")
        ssh = f"ssh -i {key} -p {host.port} -o UserKnownHostsFile={known} -o BatchMode=yes"
        dest = f"{host.workdir}/rsync-dest"
        env = {"MLTRAIN_WORKSPACE": str(work / "ws-ssh")}
        for n, (label, src) in enumerate(data.items()):
            subprocess.run([*MLTRAIN, "--workspace", str(work / "ws-ssh"), "data", "create", f"in{n}", str(src)],
                           check=True, capture_output=True)  # fmt: skip
            with_input = [*run, f"+job.inputs.d.path=data:in{n}"]
            cases = {
                "run, input, empty host cache": with_input,
                "run, input, host has it": with_input,
                "run, no input": run,
                "rsync -a": ["rsync", "-a", "-e", ssh, f"{src}/", f"root@{host.addr}:{dest}/"],
            }

            interleaved({"warm-up": with_input}, 1, work, env)  # the helper and environment on the host
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(repeats):
                for name, cmd in cases.items():
                    if name != "run, input, host has it":  # that one follows the cold run: the host has the data
                        clear(Path(dest), *(host.workdir / d for d in ("blobs", "refs", "spares")))
                    times[name].append(wall(cmd, work, env))
            clear(Path(dest), *(host.workdir / d for d in ("blobs", "refs", "spares")))
            rss = peak_rss_mb(with_input, work, env)  # the driver while it sends the data to an empty host cache
            steps, peer_cpus = [], []
            for _ in range(repeats):  # interleaved, as the runs above
                steps.append(delivery_in_process(
                    work / "ws-ssh", f"in{n}", host.entry(slots=1, python=sys.executable), known,
                    lambda: clear(Path(dest), *(host.workdir / d for d in ("blobs", "refs", "spares"))), host.proc.pid,
                ))  # fmt: skip
                clear(Path(dest))
                peer_cpus.append(rsync_cpu(cases["rsync -a"], host.proc.pid))
                clear(Path(dest))
            inproc = {case: medians([step[case] for step in steps]) for case in steps[0]}
            peer_cpu = medians(peer_cpus)
            med = {name: median(v) for name, v in times.items()}
            first = med["run, input, empty host cache"] - med["run, no input"]
            again = med["run, input, host has it"] - med["run, no input"]
            row = {**{f"{k}_s": v for k, v in med.items()}, "first_delivery_s": first, "second_run_adds_s": again}
            row["times_s"] = times
            row["first_delivery_over_rsync"] = first / med["rsync -a"]
            row["deliver_step_in_process"] = inproc
            row["rsync_cpu"] = peer_cpu
            row["driver_peak_rss_mb"] = rss
            results[label] = row
            cold, warm = inproc["empty host cache"], inproc["host has it"]
            print(
                f"ssh input, {label}: first delivery {first:.2f} s vs rsync -a {med['rsync -a']:.2f} s "
                f"({row['first_delivery_over_rsync']:.2f}x); a second run adds {again:.2f} s; the deliver step "
                f"alone: {cold['s']:.2f} s ({cold['bytes']:.0f} bytes), "
                f"then {warm['s']:.3f} s ({warm['bytes']:.0f} bytes); "
                f"CPU of that cold step: driver {cold['driver_cpu_s']:.2f} s + host {cold['host_cpu_s']:.2f} s, of "
                f"rsync -a: {peer_cpu['driver_cpu_s']:.2f} s + {peer_cpu['host_cpu_s']:.2f} s; "
                f"peak RSS of the driver {rss:.0f} MB",
                flush=True,
            )
    finally:
        stop_host(host)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-s3", action="store_true", help="no S3 download benchmark")
    parser.add_argument("--skip-ssh", action="store_true", help="no SSH input delivery benchmark")
    parser.add_argument("--only-ssh", action="store_true", help="only the SSH input delivery benchmark")
    parser.add_argument("--only-s3", action="store_true", help="only the S3 download benchmark")
    parser.add_argument("--size-mb", type=float, default=1024, help="the data's size (MiB), as 1,000 files and as one")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mltrain-data-bench-"))
    try:
        data = make_data(work / "data", int(args.size_mb * (1 << 20)))
        out: dict[str, object] = {"repeats": args.repeats, "size_mb": args.size_mb, "load_before": os.getloadavg()}
        if not (args.only_ssh or args.only_s3):
            out["create"] = bench_create(work, data, args.repeats)
        if not (args.only_ssh or args.skip_s3):
            out["download_s3"] = bench_download(work, data, args.repeats)
        if not (args.only_s3 or args.skip_ssh):
            out["ssh_input"] = bench_ssh_inputs(work, data, args.repeats)
        out["load_after"] = os.getloadavg()  # a shared machine: read the ratios against the load
        print(f"load average (1, 5, 15 min) before {out['load_before']}, after {out['load_after']}")
        print(f"results: {save('data_bench', out)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
