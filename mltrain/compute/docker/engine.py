"""The Docker engine a target talks to: its address, the client the target's own calls share (the
trials of a plan run in threads), and clients of their own for threads that block (streams, waits)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docker import APIClient


class Engine:
    def __init__(self, base_url: str | None) -> None:
        self.base_url = base_url
        self._api: APIClient | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        from mltrain.environments.docker import engine_address

        return engine_address(self.base_url)

    @property
    def api(self) -> APIClient:
        """The shared client (connected, and pinged, on first use)."""
        with self._lock:
            if self._api is None:
                self._api = self.client()
            return self._api

    @property
    def connected(self) -> APIClient | None:
        """The shared client when it was made, else None (nothing connects)."""
        return self._api

    def client(self, timeout: float | None = 120) -> APIClient:
        """A new client of the engine; ComputeError naming the address when it cannot be reached."""
        from mltrain.environments.docker import connect

        return connect(self.base_url, timeout=timeout)

    def call(self, action: Callable[[APIClient], object], timeout: float = 60) -> None:
        """``action`` with a client of its own (from a thread); errors mean the container is gone."""
        api: APIClient | None = None
        try:
            api = self.client(timeout=timeout)
            action(api)
        except Exception:  # noqa: BLE001 - already gone, or the engine is
            pass
        finally:
            if api is not None:
                api.close()

    def remove(self, container_id: str) -> None:
        """Remove the container (and its anonymous volumes), running or not; nothing when it is gone."""
        try:
            self.api.remove_container(container_id, force=True, v=True)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def close(self) -> None:
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.close()
