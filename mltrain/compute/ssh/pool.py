"""The hosts of an SSH target and their slots.

A run takes a slot of a reachable host (the one with the most free slots) at ``upload`` and gives it
back at ``cleanup``, so trials that a sweep launcher runs from many threads spread over the hosts by
free slots and wait while every slot is busy. A host that cannot be reached, was lost or lacks what
a run needs is marked down, reported with why, and skipped from then on; an error names each
problem when no host is left.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from mltrain.compute.ssh import early
from mltrain.compute.ssh.config import SSHComputeConfig, SSHHostConfig
from mltrain.compute.ssh.conn import Remote
from mltrain.compute.ssh.hostkeys import HostKeyProblem
from mltrain.errors import ComputeError


class HostPool:
    def __init__(self, cfg: SSHComputeConfig) -> None:
        self.cfg = cfg
        self.remotes = early.adopt(cfg) or [Remote(h, cfg) for h in cfg.hosts]
        self._cond = threading.Condition()
        self._busy: dict[str, int] = {r.label: 0 for r in self.remotes}
        self.held: dict[str, Remote] = {}  # run id -> the host whose slot it holds
        self.down: dict[str, str] = {}  # host label -> why it is skipped
        self._hints: dict[str, str | None] = {}
        self.key_problems: dict[str, HostKeyProblem] = {}  # host label -> its untrusted host key

    # -- reaching the hosts -----------------------------------------------------------------------
    def reach(self, remote: Remote) -> bool:
        """Connect and probe ``remote``; on failure it is marked down (reported, then skipped)."""
        warming = remote.warming
        if warming is not None:  # connected early: that attempt ends first (if it failed, connect again)
            warming.join()
            remote.config, remote.warming = self.cfg, None  # the run's own host key policy from now on
        if remote.probe is not None:
            return True
        try:
            remote.bootstrap()
            return True
        except HostKeyProblem as exc:
            self.key_problems[remote.label] = exc
            self.mark_down(remote, exc.message, exc.hint)
            return False
        except ComputeError as exc:
            self.mark_down(remote, exc.message, exc.hint)
            return False

    def _reach_all(self) -> None:
        threads = [threading.Thread(target=self.reach, args=(r,), daemon=True) for r in self.remotes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def check(self) -> None:
        """Connect to every host (in parallel); unreachable ones are reported and skipped, and an
        error names each problem when no host is left."""
        self._reach_all()
        if len(self.down) == len(self.remotes):
            raise self.none_left()
        for label, why in self.down.items():
            print(f"mltrain: skipping SSH host {label}: {why}", file=sys.stderr)

    def report(self, build_env: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """What each host has (``mltrain compute check``): python, uv, pip, docker, free disk, slots,
        and whether it reaches its package index now (``index``: url, reachable, said), asked with
        ``build_env`` added to the host's environment (the variables an environment's build gets there)."""
        self.down.clear()
        self.key_problems.clear()
        self._reach_all()
        index: dict[str, dict[str, Any]] = {}

        def check_index(remote: Remote) -> None:  # one request from the host, a few seconds at most
            try:
                index[remote.label] = remote.agent("index", request={"env": build_env or {}}, timeout=30)
            except ComputeError as exc:
                index[remote.label] = {"reachable": None, "said": exc.message}

        up = [r for r in self.remotes if r.label not in self.down and r.probe is not None]
        threads = [threading.Thread(target=check_index, args=(r,), daemon=True) for r in up]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rows: list[dict[str, Any]] = []
        for r in self.remotes:
            key = self.key_problems.get(r.label)
            if key is not None:
                rows.append(
                    {"host": r.label, "ok": False, "host_key": key.kind, "error": key.message, "hint": key.hint}
                )
            elif r.label in self.down:
                rows.append(
                    {"host": r.label, "ok": False, "error": self.down[r.label], "hint": self._hints.get(r.label)}
                )
            else:
                assert r.probe is not None
                keys = ("python", "uv", "pip", "docker", "free_bytes", "cpus", "workdir")
                probe = {k: r.probe.get(k) for k in keys}
                row = {"host": r.label, "ok": True, "host_key": "trusted", "slots": r.slots, **probe}
                rows.append({**row, "index": index.get(r.label)})
        return rows

    def none_left(self) -> ComputeError:
        detail = "\n".join(f"  {label}: {why}" for label, why in self.down.items())
        hint = self.keys_hint() or next((h for h in self._hints.values() if h), None)
        return ComputeError(
            f"no SSH host of compute.hosts can run jobs:\n{detail}",
            hint=hint or "check compute.hosts (mltrain compute check)",
        )

    def keys_hint(self) -> str | None:
        """With several unknown host keys: the command that trusts each (None with fewer than two)."""
        unknown = [p.fix for p in self.key_problems.values() if p.kind == "unknown"]
        if len(unknown) < 2:
            return None
        lines = "\n".join(f"    {fix}" for fix in unknown)
        return (
            f"if those are the fingerprints of the hosts, trust them with\n{lines}\n"
            "  (or connect once to each with ssh), or set compute.host_key_policy=accept-new"
        )

    def mark_down(self, remote: Remote, why: str, hint: str | None = None) -> None:
        """``remote`` was lost (or cannot run the jobs): skipped by later runs (reported with ``why``)."""
        with self._cond:
            self.down[remote.label] = why
            self._hints[remote.label] = hint
            self._cond.notify_all()

    def skip_unless(self, problem: Callable[[Remote], str | None], hint: str) -> None:
        """Mark down each reachable host for which ``problem`` names one (reported like a host that is
        down); ComputeError naming each problem, with ``hint``, when no host is left."""
        skipped = []
        for remote in self.remotes:
            if remote.label in self.down or remote.probe is None:
                continue
            why = problem(remote)
            if why is not None:
                self.mark_down(remote, why, hint)
                skipped.append(remote.label)
        if len(self.down) == len(self.remotes):
            raise self.none_left()
        for label in skipped:
            print(f"mltrain: skipping SSH host {label}: {self.down[label]}", file=sys.stderr)

    # -- slots ------------------------------------------------------------------------------------
    def capacity(self) -> int:
        """Slots of the hosts not known to be down: how many trials a launcher may run at once."""
        with self._cond:
            return sum(r.slots for r in self.remotes if r.label not in self.down)

    def free_slots(self) -> dict[str, int]:
        """Free slots per reachable host (for a launcher deciding how many trials to run at once)."""
        with self._cond:
            return {r.label: r.slots - self._busy[r.label] for r in self.remotes if r.label not in self.down}

    def acquire(self, run_id: str, exclude: tuple[str, ...] = ()) -> Remote:
        """A reachable host with a free slot for ``run_id`` (waits while all are busy); the slot is
        held until ``release(run_id)``. Thread-safe."""
        while True:
            with self._cond:
                while True:
                    up = [r for r in self.remotes if r.label not in self.down and r.label not in exclude]
                    if not up:
                        raise self.none_left() if self.down else ComputeError("no other SSH host to run on")
                    free = [r for r in up if self._busy[r.label] < r.slots]
                    if free:
                        remote = max(free, key=lambda r: r.slots - self._busy[r.label])
                        self._busy[remote.label] += 1
                        self.held[run_id] = remote
                        break
                    self._cond.wait(1.0)
            if self.reach(remote):
                return remote
            self.release(run_id)

    def release(self, run_id: str) -> None:
        with self._cond:
            remote = self.held.pop(run_id, None)
            if remote is not None:
                self._busy[remote.label] -= 1
                self._cond.notify_all()

    def pick_host(self) -> Remote:
        """A reachable host (no slot taken): the least busy."""
        for remote in sorted(self.remotes, key=lambda r: self._busy[r.label] - r.slots):
            if remote.label not in self.down and self.reach(remote):
                return remote
        raise self.none_left()

    # -- hosts named elsewhere --------------------------------------------------------------------
    def remote_for(self, ref: dict[str, Any]) -> Remote:
        """The pool's host of a job reference, or a connection to it made from the reference."""
        for remote in self.remotes:
            if (remote.entry.host, remote.entry.port, remote.entry.user) == (ref["host"], ref["port"], ref["user"]):
                return remote
        entry = SSHHostConfig(host=ref["host"], port=ref["port"], user=ref["user"], key_file=ref.get("key_file"))
        remote = Remote(entry, self.cfg)
        with self._cond:
            self.remotes.append(remote)
            self._busy[remote.label] = 0
        return remote

    def by_where(self, where: str) -> Remote | None:
        """The host of ``where`` (``ssh:HOST`` of an environment record), if it is one of the pool."""
        return next((r for r in self.remotes if r.where == where), None)

    def close(self) -> None:
        for remote in self.remotes:
            remote.close()
