"""``data:NAME``, ``data:NAME:VERSION`` and ``data:NAME@ALIAS``: references to a data version."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mltrain.errors import DataError
from mltrain.workspace.data import PREFIX
from mltrain.workspace.names import check_name

if TYPE_CHECKING:
    from mltrain.workspace import Workspace
    from mltrain.workspace.data import DataVersion

_REF = re.compile(r"(?P<name>[^:@]*)(?::(?P<version>[^:@]*)|@(?P<alias>[^:@]*))?")


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """(name, version, alias) of ``[data:]NAME[:VERSION|@ALIAS]``; names checked as names are."""
    text = ref.strip()
    text = text[len(PREFIX) :] if text.startswith(PREFIX) else text
    m = _REF.fullmatch(text)
    version = m.group("version") if m else None
    if not m or (version is not None and not version.isdigit()):
        raise DataError(
            f"{ref!r} is not a data reference", hint="write data:NAME, data:NAME:VERSION or data:NAME@ALIAS"
        )
    name = check_name(m.group("name"), "data asset", DataError)
    alias = m.group("alias")
    if alias is not None:
        check_name(alias, "alias", DataError)
    return name, int(version) if version is not None else None, alias


def resolve(ws: Workspace, ref: str, include_archived: bool = False) -> DataVersion:
    """The version ``ref`` names, with its manifest (NotFoundError naming the valid choices)."""
    name, version, alias = parse_ref(ref)
    return ws.data.get(name, version, alias, include_archived=include_archived)
