"""Credentials of a datastore: never in a URL, read from a file when one is named (values never shown)."""

from __future__ import annotations

import configparser
from pathlib import Path
from urllib.parse import urlsplit

from mltrain.errors import ConfigError, DataError


def first_line(exc: BaseException) -> str:
    """The first line of an error's text (at most 300 characters), for a message."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def check_url_has_no_secret(option: str, url: str | None) -> None:
    """Refuse a URL carrying a user or password (credentials go in the environment or a file)."""
    if url and (urlsplit(url).username or urlsplit(url).password):
        raise ConfigError(
            f"{option} holds a user name or password",
            hint="give credentials through the environment, a profile or datastore.credentials_file, never in a URL",
        )


def read_credentials_file(path: str, section: str | None, keys: tuple[str, ...]) -> dict[str, str]:
    """``keys`` read from ``path``: an INI file (``[section]``, e.g. an AWS credentials file) or, without
    ``section``, ``KEY=VALUE`` lines. The values are never shown in an error."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"the credentials file {file} does not exist", hint="fix datastore.credentials_file")
    text = file.read_text()
    if section is None:
        pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#"))
        found = {k.strip(): v.strip() for k, v in pairs}
    else:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(text, source=str(file))
        except configparser.Error as exc:
            raise DataError(f"the credentials file {file} is not an INI file: {first_line(exc)}") from None
        if not parser.has_section(section):
            raise DataError(
                f"the credentials file {file} has no profile [{section}]",
                hint=f"profiles in it: {', '.join(parser.sections()) or '(none)'}; set datastore.profile",
            )
        found = dict(parser.items(section))
    picked = {k: found[k] for k in keys if found.get(k)}
    if not picked:
        raise DataError(f"the credentials file {file} holds none of {', '.join(keys)}")
    return picked
