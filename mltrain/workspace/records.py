"""What the stores return: frozen dataclasses built from table rows by one decoder.

Every store record derives from :class:`Record`: its fields are attributes (``run.status``), and the
record is also a read-only mapping of the same fields (``run["status"]``, ``run.get("error")``,
``"config" in run``), so code and JSON encoders that read rows by key keep working; nothing can
change it (assignment, ``rec[key] = ...``, ``update`` raise). ``to_dict()`` gives a plain copy
(nested records as dicts, tuples as lists).

:func:`decode_row` is the one row decoder: JSON text columns become values (an empty column its
empty value), boolean columns become ``bool`` (SQLite stores 0/1).
"""

from __future__ import annotations

import dataclasses
import json
import reprlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NoReturn, TypeVar

T = TypeVar("T", bound="Record")

_FIELDS: dict[type, tuple[str, ...]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """The field names of a record class, in order."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def record(cls: type[T]) -> type[T]:
    """Make the :class:`Record` subclass ``cls`` a frozen dataclass with slots. Its repr, equality and hash
    are Record's, the same as a dataclass's, shared rather than compiled for each class (every run
    imports the stores: their records are defined at start-up)."""
    return dataclasses.dataclass(frozen=True, slots=True, repr=False, eq=False)(cls)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Record(dict):  # type: ignore[type-arg]
    """Base of the records: a frozen dataclass (made with :func:`record`) whose fields are also its
    (read-only) mapping.

    A subclass names its JSON columns in ``JSON_COLUMNS`` (column → the factory of its empty value,
    or None to keep NULL as None) and its boolean columns in ``BOOL_COLUMNS``; ``from_row`` decodes a
    row with them and ignores columns that are not fields."""

    __slots__ = ()
    JSON_COLUMNS: ClassVar[Mapping[str, Callable[[], Any] | None]] = {}
    BOOL_COLUMNS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        dict.update(self, {name: getattr(self, name) for name in field_names(type(self))})

    def _frozen(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"a {type(self).__name__} record cannot be changed")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _frozen  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), tuple(getattr(self, name) for name in field_names(type(self)))

    def __copy__(self) -> Record:
        return self

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in field_names(type(self)))

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in field_names(type(self)))
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (nested records as dicts, tuples as lists)."""
        return {name: _plain(getattr(self, name)) for name in field_names(type(self))}

    @classmethod
    def from_row(cls: type[T], row: Any, **extra: Any) -> T:
        """The record of a table row (or a mapping of one), decoded; ``extra`` fields added."""
        names = field_names(cls)
        values = decode_row(row, cls.JSON_COLUMNS, cls.BOOL_COLUMNS)
        values.update(extra)
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def pick(cls: type[T], source: Mapping[str, Any], **extra: Any) -> T:
        """A record of this class from the fields of ``source`` it has (another record, a mapping)."""
        names = field_names(cls)
        data = {**source, **extra}
        return cls(**{k: v for k, v in data.items() if k in names})


def decode_row(
    row: Any, json_columns: Mapping[str, Callable[[], Any] | None] | None = None, bool_columns: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A row (SQLAlchemy Row or mapping) as a dict: JSON columns parsed (an empty one is its
    column's empty value: ``json_columns[name]()``, or None), boolean columns as ``bool``."""
    rec = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    for key, empty in (json_columns or {}).items():
        if key in rec:
            raw = rec[key]
            rec[key] = json.loads(raw) if raw else (empty() if empty is not None else None)
    for key in bool_columns:
        if key in rec and rec[key] is not None:
            rec[key] = bool(rec[key])
    return rec
