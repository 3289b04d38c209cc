"""This process as a driver of a Ray cluster (for warm workers): one connection per process, shared
by its targets, made with the cluster's token (as for the job server), and every Ray call of mltrain
made in a :func:`session` so that :func:`disconnect` never ends the connection under a call.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.errors import ComputeError

if TYPE_CHECKING:
    from mltrain.compute.ray.auth import Token


NAMESPACE = "mltrain"
CALL_TIMEOUT_S = 120.0
SHUTDOWN_WAIT_S = 30.0  # longest disconnect() waits for Ray calls in flight before ending the connection


_lock = threading.Lock()
_idle = threading.Condition(_lock)
_driver: dict[str, Any] = {"address": None, "users": 0, "ours": False, "busy": 0}


def connect(address: str, token: Token | None, timeout: float) -> None:
    """This process as a driver of the Ray cluster at ``address`` (GCS ``HOST:PORT`` or ``ray://``);
    one connection per process, shared by its targets (released by :func:`disconnect`). A cluster
    that does not answer within ``timeout`` seconds (``compute.connect_timeout_s``) is a ComputeError;
    Ctrl-C is not held up meanwhile."""
    import ray

    with _lock:
        if _driver["address"] is None:
            if ray.is_initialized():  # the process's own code connected: use that connection, never end it
                _driver.update(address=address, ours=False)
            else:
                if token is not None:
                    _use_token(token)
                for name in ("ray", "ray._private", "ray.runtime_env"):
                    logging.getLogger(name).setLevel(logging.ERROR)
                failed: list[BaseException] = []
                attempt = {"done": False, "abandoned": False}
                attempt_lock = threading.Lock()

                def init() -> None:  # not on the main thread: Ray then leaves mltrain's SIGTERM handler alone
                    try:
                        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.ERROR, log_to_driver=False)
                    except BaseException as exc:  # noqa: BLE001 - ConnectionError, auth errors, ...
                        failed.append(exc)
                    with attempt_lock:
                        attempt["done"] = True
                        abandoned = attempt["abandoned"]
                    if abandoned and not failed:  # connected after the caller gave up: leave no driver behind
                        ray.shutdown()

                thread = threading.Thread(target=init, name="mltrain-ray-connect", daemon=True)
                thread.start()
                thread.join(timeout)  # interruptible: a KeyboardInterrupt leaves the daemon thread behind
                with attempt_lock:
                    attempt["abandoned"] = not attempt["done"]
                if attempt["abandoned"]:
                    from mltrain.compute.ray.auth import unreachable

                    raise unreachable(address, timeout)
                if failed:
                    raise ComputeError(f"cannot connect to the Ray cluster at {address} as a driver: {failed[0]}")
                _driver.update(address=address, ours=True)
        elif _driver["address"] != address:
            raise ComputeError(
                f"this process is a driver of the Ray cluster at {_driver['address']}, not of {address}",
                hint="one process talks to one Ray cluster's warm workers",
            )
        _driver["users"] += 1


def disconnect() -> None:
    """Release a :func:`connect`; the last one ends the connection once no Ray call of ours runs."""
    import ray

    with _lock:
        _driver["users"] = max(0, _driver["users"] - 1)
        if _driver["users"] == 0 and _driver["address"] is not None:
            ours = _driver["ours"]
            _driver.update(address=None, ours=False)  # no new call starts
            if _idle.wait_for(lambda: _driver["busy"] == 0, timeout=SHUTDOWN_WAIT_S) and ours:
                ray.shutdown()  # (a call still running after the wait: left connected, the process ends soon)


@contextmanager
def session() -> Iterator[None]:
    """Around every Ray call of this module: refused with a ComputeError once this process is no
    longer connected, and :func:`disconnect` waits for those running. (A Ray call after the shutdown
    would start a local Ray instance, or end the process.)"""
    with _lock:
        if _driver["address"] is None:
            raise ComputeError("this process is no longer connected to the Ray cluster")
        _driver["busy"] += 1
    try:
        yield
    finally:
        with _lock:
            _driver["busy"] -= 1
            _idle.notify_all()


def _use_token(token: Token) -> None:
    """Ray's driver takes the token from its environment, read once (when ``ray`` was imported, e.g.
    by the job client): set it there and have Ray read it again (as Ray's own test utilities do)."""
    if _env_token() != token.value:
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = token.value
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # another Ray: it reads the environment when connecting
        pass


def _env_token() -> str | None:
    if os.environ.get("RAY_AUTH_MODE") != "token":
        return None
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    try:
        return Path(os.environ["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    except (KeyError, OSError):
        return None


def call(method: Any, *args: Any, timeout: float = CALL_TIMEOUT_S) -> Any:
    """``method.remote(*args)`` of an actor and its result (``ray.get`` with a timeout), in a :func:`session`."""
    import ray

    with session():
        return ray.get(method.remote(*args), timeout=timeout)


def send(method: Any, *args: Any) -> None:
    """``method.remote(*args)`` without waiting; nothing when the actor or the connection is gone."""
    try:
        with session():
            method.remote(*args)
    except Exception:  # noqa: BLE001 - gone: whoever follows it notices
        pass
