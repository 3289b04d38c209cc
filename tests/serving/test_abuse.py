"""The scoring server under abuse, on loopback, with bounded loops: a flood of unfinished huge headers
without a key, and a slowloris of 2,000 sockets. Normal requests must keep succeeding (no timeout, no
error) and no worker may be restarted. Two Authorization headers are a 400."""

from __future__ import annotations

import http.client
import json
import re
import selectors
import socket
import threading
import time
from typing import Any

import pytest

from .helpers import PRIMARY_KEY, Launcher, ModelFile, Server

FLOOD_CLIENTS = 6
FLOOD_HEADER_BYTES = 120 * 1024 * 1024  # what each flood connection tries to send as one header
SLOWLORIS_SOCKETS = 2000
ABUSE_S = 15.0  # how long each attack lasts
NORMAL_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def guarded(launcher: Launcher, svc_file: ModelFile, keys_file) -> Server:
    """One worker with a memory limit, as deployed, with a short head timeout to keep the test short."""
    config = svc_file.config(auth=True, keys_file=str(keys_file), workers=1, memory_gb=1.0, header_timeout_s=5)
    return launcher.wait_ready(launcher.spawn(config))


def _restarts(server: Server) -> float:
    text = server.get("/metrics", key=PRIMARY_KEY).body.decode()
    return sum(float(v) for v in re.findall(r"^mltrain_worker_restarts_total\{[^}]*\} (\S+)$", text, flags=re.M))


def _worker_pid(server: Server) -> int:
    return int(server.get("/health/live").json()["pid"])


def _normal_requests(server: Server, stop: threading.Event, results: dict[str, int]) -> None:
    body = json.dumps({"data": [[5.1, 3.5, 1.4, 0.2]]}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {PRIMARY_KEY}"}
    while not stop.is_set():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=NORMAL_TIMEOUT_S)
        try:
            conn.request("POST", "/score", body=body, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            ok = resp.status == 200 and json.loads(payload) == {"predictions": [0]}
            results["ok" if ok else "bad"] += 1
        except TimeoutError:
            results["timeouts"] += 1
        except OSError:
            results["errors"] += 1
        finally:
            conn.close()
        time.sleep(0.05)


def _flood_client(port: int, stop: threading.Event, stats: dict[str, int], lock: threading.Lock) -> None:
    chunk = b"a" * 65536
    while not stop.is_set():
        sent = 0
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Pad: ")
                while sent < FLOOD_HEADER_BYTES and not stop.is_set():
                    s.sendall(chunk)
                    sent += len(chunk)
        except OSError:
            pass
        with lock:
            stats["connections"] += 1
            stats["bytes"] += sent


def _run_during(attack: Any, server: Server) -> dict[str, int]:
    results = {"ok": 0, "bad": 0, "timeouts": 0, "errors": 0}
    stop = threading.Event()
    normal = threading.Thread(target=_normal_requests, args=(server, stop, results))
    attack_stop = threading.Event()
    attacker = threading.Thread(target=attack, args=(attack_stop,))
    attacker.start()
    time.sleep(1.0)  # let the attack build up first
    normal.start()
    time.sleep(ABUSE_S)
    stop.set()
    normal.join(60)
    attack_stop.set()
    attacker.join(60)
    return results


def _report(attack: str, results: dict[str, int]) -> None:
    total = sum(results.values())
    print(
        f"\n{attack}; normal requests: {results['ok']}/{total} ok ({100 * results['ok'] / max(total, 1):.1f}%), "
        f"{results['timeouts']} timeouts, {results['errors']} errors"
    )


def test_a_flood_of_unfinished_huge_headers_does_not_disturb_normal_requests(guarded: Server):
    pid, restarts = _worker_pid(guarded), _restarts(guarded)
    stats = {"connections": 0, "bytes": 0}
    lock = threading.Lock()

    def flood(stop: threading.Event) -> None:
        clients = [
            threading.Thread(target=_flood_client, args=(guarded.port, stop, stats, lock)) for _ in range(FLOOD_CLIENTS)
        ]
        for c in clients:
            c.start()
        for c in clients:
            c.join(60)

    results = _run_during(flood, guarded)
    _report(f"header flood: {FLOOD_CLIENTS} clients, {stats['connections']} connections cut, "
            f"{stats['bytes'] / 1e6:.1f} MB sent", results)  # fmt: skip
    assert stats["connections"] > FLOOD_CLIENTS  # the server cut the flood's connections
    assert results["ok"] >= 20 and results["ok"] == sum(results.values()), results
    assert _restarts(guarded) == restarts and _worker_pid(guarded) == pid


def test_a_slowloris_of_2000_sockets_does_not_disturb_normal_requests(guarded: Server):
    pid, restarts = _worker_pid(guarded), _restarts(guarded)
    stats = {"opened": 0, "cut": 0}

    def slowloris(stop: threading.Event) -> None:
        sel = selectors.DefaultSelector()
        socks: set[socket.socket] = set()

        def open_one() -> None:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", guarded.port))
            sel.register(s, selectors.EVENT_READ)
            socks.add(s)
            stats["opened"] += 1

        def drop(s: socket.socket) -> None:
            sel.unregister(s)
            socks.discard(s)
            s.close()

        for _ in range(SLOWLORIS_SOCKETS):
            open_one()
        started = {s: False for s in socks}
        try:
            while not stop.is_set():
                for key, _ in sel.select(timeout=0.2):  # the server answered or closed: reconnect
                    drop(key.fileobj)  # type: ignore[arg-type]
                    stats["cut"] += 1
                    open_one()
                for s in list(socks):  # one more header line per socket, every round
                    try:
                        s.send(b"X-Slow: 1\r\n" if started.get(s) else b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
                        started[s] = True
                    except OSError:
                        pass
                stop.wait(1.0)
        finally:
            for s in list(socks):
                drop(s)
            sel.close()

    results = _run_during(slowloris, guarded)
    _report(f"slowloris: {SLOWLORIS_SOCKETS} sockets held, {stats['opened']} opened in all, "
            f"{stats['cut']} cut by the server", results)  # fmt: skip
    assert stats["cut"] > 0  # the server cut slow connections (head timeout, shedding)
    assert results["ok"] >= 20 and results["ok"] == sum(results.values()), results
    assert _restarts(guarded) == restarts and _worker_pid(guarded) == pid


def test_a_huge_header_gets_431_and_a_slow_head_408(guarded: Server):
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as s:
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 431 ")
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=30) as s:
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 408 ")
    assert guarded.get("/health/live").status == 200


def test_two_authorization_headers_are_a_400(guarded: Server):
    for path, method, body in (("/score", "POST", b'{"data": [[1, 2, 3, 4]]}'), ("/metrics", "GET", b"")):
        with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as s:
            s.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer wrong\r\nAuthorization: Bearer {PRIMARY_KEY}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
        assert b"more than one Authorization header" in reply


def test_bodies_still_arriving_after_an_early_answer_do_not_lock_out_normal_requests(guarded: Server):
    """More connections than the limit (1,024) send /score a head without the key, get their 401 at once and
    keep their body coming: they are closed as new connections arrive, so normal requests are answered."""
    pid = _worker_pid(guarded)
    head = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    socks = []
    try:
        for _ in range(1100):
            s = socket.create_connection(("127.0.0.1", guarded.port), timeout=10)
            s.sendall(head)
            socks.append(s)
        for _ in range(5):
            assert guarded.score({"data": [[5.1, 3.5, 1.4, 0.2]]}).json() == {"predictions": [0]}
    finally:
        for s in socks:
            s.close()
    assert _worker_pid(guarded) == pid
