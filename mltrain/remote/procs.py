"""Process identity and process-group signalling (Linux and macOS).

A PID alone can be reused; ``start_token`` pairs it with the process start time so a record of
"process P" never matches a later, unrelated process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable


def hostname() -> str:
    return socket.gethostname()


def start_token(pid: int) -> str | None:
    """An opaque token of when ``pid`` started, or None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        # the command name may contain spaces and parentheses: fields follow the last ')'
        fields = stat[stat.rindex(b")") + 2 :].split()
        return fields[19].decode()  # field 22 of stat: starttime in clock ticks
    except FileNotFoundError:
        return None
    except OSError:
        pass
    try:  # no /proc (macOS)
        out = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def is_alive(pid: int | None, token: str | None) -> bool:
    """True when the process ``pid`` with start ``token`` still runs (a zombie counts as gone)."""
    if not pid:
        return False
    current = start_token(pid)
    if current is None or (token is not None and current != token):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state != b"Z"
    except OSError:
        return True


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group ``pgid``; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (children, their children, ...), read from /proc; [] without /proc."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def group_exists(pgid: int) -> bool:
    """True while any process of the group ``pgid`` runs (zombies waiting to be reaped do not count)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc (macOS): a signal-able group exists
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":  # fields: state, ppid, pgrp, ...
            return True
    return False


def owns_group(pgid: int | None, leader_token: str | None) -> bool:
    """True while the process group ``pgid`` whose leader started at ``leader_token`` has members.

    A dead leader's id cannot be reused while its group has members, so a live group whose leader
    is gone is still the same group.
    """
    if not pgid or not group_exists(pgid):
        return False
    current = start_token(pgid)
    return current is None or leader_token is None or current == leader_token


def stop_group(pgid: int, grace_s: float = 5.0, first: int = signal.SIGINT) -> None:
    """Stop a process group: SIGINT (as Ctrl-C would), then SIGTERM, then SIGKILL, ``grace_s`` apart;
    ``first=SIGTERM`` skips the SIGINT. Returns once the group is gone."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
    for sig in sigs[sigs.index(first) :]:
        if not signal_group(pgid, sig):
            return
        deadline = time.monotonic() + (grace_s if sig != signal.SIGKILL else 2.0)
        while time.monotonic() < deadline:
            if not group_exists(pgid):
                return
            time.sleep(0.05)


def run_streaming(
    cmd: list[str],
    on_line: Callable[[str], None],
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    tail: int = 30,
) -> tuple[int, list[str]]:
    """Run ``cmd`` with stdout and stderr merged, passing each line to ``on_line``.

    Returns (exit code, the last ``tail`` lines).
    """
    from collections import deque

    last: deque[str] = deque(maxlen=tail)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd, text=True, errors="replace", bufsize=1
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        last.append(line)
        on_line(line)
    return proc.wait(), list(last)
