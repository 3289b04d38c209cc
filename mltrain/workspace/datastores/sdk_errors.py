"""Any failure of an object store's SDK as a DataError that names the store, the operation and the fix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mltrain.errors import DataError
from mltrain.workspace.datastores.credentials import first_line

CONNECTION_ERRORS = (
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "ServiceRequestError",
    "TransportError",
)
CREDENTIAL_ERRORS = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "CredentialRetrievalError",
    "ProfileNotFound",
    "ClientAuthenticationError",
    "DefaultCredentialsError",
    "RefreshError",
)


@contextmanager
def sdk_errors(url: str, credentials_hint: str, what: str, key: str | None = None) -> Iterator[None]:
    """Re-raise what the block raises as a DataError (a DataError passes through unchanged)."""
    try:
        yield
    except DataError:
        raise
    except FileNotFoundError as exc:
        where = f"{key} does not exist in {url}" if key else f"{url} does not exist"
        raise DataError(f"{where} ({first_line(exc)})", hint="check the URL and that the bucket exists") from None
    except PermissionError as exc:
        raise DataError(f"{url} refused access ({what}): {first_line(exc)}", hint=credentials_hint) from None
    except Exception as exc:  # noqa: BLE001 - every SDK error is reported, not traced
        name = type(exc).__name__
        if name in CREDENTIAL_ERRORS:
            raise DataError(f"no usable credentials for {url}: {first_line(exc)}", hint=credentials_hint) from None
        if name in CONNECTION_ERRORS or isinstance(exc, (ConnectionError, TimeoutError)):
            raise DataError(
                f"cannot reach {url} ({what}): {first_line(exc)}",
                hint="check the endpoint (datastore.endpoint_url or the SDK's environment) and the network",
            ) from None
        raise DataError(f"{what} on {url} failed: {name}: {first_line(exc)}") from None
