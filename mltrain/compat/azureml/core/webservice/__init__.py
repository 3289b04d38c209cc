"""``azureml.core.webservice``: a web service is an mltrain endpoint (``mltrain endpoints``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from ...exceptions import WebserviceException
from .._unsupported import unsupported

STATES = {"Running": "Healthy", "Creating": "Transitioning", "Unhealthy": "Unhealthy", "Failed": "Failed"}
_KEYS: dict[tuple[str, str], dict[str, str]] = {}  # (workspace, name) -> keys made by this process


class DeploymentConfiguration:
    """What ``deploy_configuration`` returns: the deploy target's options."""

    def __init__(self, **options: Any) -> None:
        self.options = {k: v for k, v in options.items() if v is not None}

    def __repr__(self) -> str:
        return f"DeploymentConfiguration({self.options})"


class Webservice:
    """A deployed model: ``Webservice(ws, name)``, or what ``Model.deploy`` returns."""

    def __init__(self, workspace: Any, name: str, **kwargs: Any) -> None:
        self.workspace = workspace
        self.name = name
        self._refresh()

    @classmethod
    def _deploy(
        cls, workspace: Any, name: str, model: str, target: str, options: dict[str, Any], show_output: bool
    ) -> Webservice:
        if show_output:
            print(f"deploying {model} as {name} ({target})", flush=True)
        record = workspace._ws.deploy(model, name=name, target=target, **options)
        if record.keys:
            _KEYS[(str(workspace._ws.path), name)] = dict(record.keys)
        return cls(workspace, name)

    def _refresh(self) -> None:
        try:
            self._record = self.workspace._ws.endpoint(self.name)
        except Exception as exc:  # noqa: BLE001 - Azure's error for a service that does not exist
            raise WebserviceException(f"WebserviceNotFound: {self.name}: {exc}") from exc

    @property
    def state(self) -> str:
        """Healthy, Transitioning, Unhealthy or Failed (Azure's names), checked now."""
        self._refresh()
        return STATES.get(self._record.state, self._record.state)

    @property
    def scoring_uri(self) -> str | None:
        return self._record.scoring_uri

    @property
    def swagger_uri(self) -> str | None:
        return self._record.swagger_uri

    @property
    def auth_enabled(self) -> bool:
        return self._record.auth

    @property
    def compute_type(self) -> str:
        return self._record.target

    @property
    def error(self) -> str | None:
        return self._record.reason

    def wait_for_deployment(self, show_output: bool = False, timeout_sec: float | None = None) -> None:
        """Deployment is complete when ``Model.deploy`` returns; this reports its state (and raises
        WebserviceException when it failed)."""
        state = self.state
        if show_output:
            print(f"{self.name}: {state} at {self.scoring_uri}", flush=True)
        if state == "Failed":
            raise WebserviceException(f"service {self.name} failed: {self._record.reason}")

    def get_keys(self) -> tuple[str, str]:
        """The primary and secondary keys made when this process deployed the service (keys are stored
        hashed: from another process, make new ones with ``regen_key``)."""
        keys = _KEYS.get((str(self.workspace._ws.path), self.name))
        if not keys:
            raise WebserviceException(
                f"the keys of {self.name} are stored hashed and were not made by this process: "
                f"service.regen_key('Primary') (or `mltrain endpoints keys {self.name} --regenerate primary`) "
                "makes a new one"
            )
        return keys.get("primary", ""), keys.get("secondary", "")

    def regen_key(self, key: str, set_key: str | None = None) -> None:
        """A new ``Primary`` or ``Secondary`` key (the old one stops working)."""
        if set_key is not None:
            raise unsupported("Webservice.regen_key(set_key=...)", "keys are made by mltrain")
        slot = key.lower()
        made = self.workspace._ws.regenerate_key(self.name, slot)
        _KEYS.setdefault((str(self.workspace._ws.path), self.name), {})[slot] = made

    def run(self, input_data: Any) -> Any:
        """Score ``input_data`` (JSON text or an object: ``{"data": [[...], ...]}``) with the primary key."""
        body = input_data if isinstance(input_data, (str, bytes)) else json.dumps(input_data)
        headers = {"Content-Type": "application/json"}
        if self.auth_enabled:
            headers["Authorization"] = f"Bearer {self.get_keys()[0]}"
        if not self.scoring_uri:
            raise WebserviceException(f"service {self.name} has no scoring URI (state {self.state})")
        data = body.encode() if isinstance(body, str) else body
        request = urllib.request.Request(self.scoring_uri, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310 - the endpoint's own URI
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise WebserviceException(
                f"{self.name} answered {exc.code}: {exc.read().decode(errors='replace')}"
            ) from exc

    def get_logs(self, num_lines: int = 5000, init: bool = False) -> str:
        """The last ``num_lines`` lines of the scoring server's log."""
        text = self.workspace._ws.endpoint_logs(self.name)
        return "\n".join(text.splitlines()[-num_lines:])

    def delete(self) -> None:
        self.workspace._ws.delete_endpoint(self.name)
        _KEYS.pop((str(self.workspace._ws.path), self.name), None)

    def serialize(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "scoringUri": self.scoring_uri}

    @staticmethod
    def list(workspace: Any, **kwargs: Any) -> list[Webservice]:
        return [Webservice(workspace, ep.name) for ep in workspace._ws.endpoints()]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise unsupported(
            f"Webservice.{name}",
            "supported: wait_for_deployment, state, scoring_uri, swagger_uri, get_keys, regen_key, run, "
            "get_logs, delete; redeploy with Model.deploy (or `mltrain endpoints deploy`)",
        )

    def __repr__(self) -> str:
        return f"Webservice(name={self.name!r}, state={self._record.state!r}, scoring_uri={self.scoring_uri!r})"


class AciWebservice(Webservice):
    """Azure Container Instances: served by mltrain's scoring server on this machine."""

    @staticmethod
    def deploy_configuration(
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        auth_enabled: bool | None = None,
        **kwargs: Any,
    ) -> DeploymentConfiguration:
        given = {k: v for k, v in kwargs.items() if v is not None and k not in ("tags", "description")}
        if given:
            raise unsupported(
                f"AciWebservice.deploy_configuration({', '.join(given)}=...)", "give cpu_cores, memory_gb, auth_enabled"
            )
        return DeploymentConfiguration(cpu=cpu_cores, memory_gb=memory_gb, auth=auth_enabled)


class LocalWebservice(Webservice):
    """A local service (Azure runs it in Docker): mltrain's Docker deploy target."""

    @staticmethod
    def deploy_configuration(port: int | None = None, **kwargs: Any) -> DeploymentConfiguration:
        if kwargs:
            raise unsupported(f"LocalWebservice.deploy_configuration({', '.join(kwargs)}=...)", "give port")
        return DeploymentConfiguration(target="docker", port=port, auth=False)


AksWebservice = AciWebservice
__all__ = ["AciWebservice", "AksWebservice", "LocalWebservice", "Webservice", "WebserviceException"]
