"""What the stores return: frozen, typed records built from table rows by one decoder.

Every store record derives from :class:`Record` and is declared like a dataclass (``@record`` over a
class of annotated fields, defaults and ``dataclasses.field(default_factory=...)``): its fields are
attributes (``run.status``), and the record is also a read-only mapping of the same fields
(``run["status"]``, ``run.get("error")``, ``"config" in run``), so code and JSON encoders that read
rows by key keep working; nothing can change it (assignment raises ``dataclasses.FrozenInstanceError``;
``rec[key] = ...``, ``update`` raise TypeError). ``to_dict()`` gives a plain copy (nested records as
dicts, tuples as lists). ``dataclasses.fields``, ``asdict`` and ``replace`` work on records.

:func:`record` compiles nothing: every run imports the stores, so their records are defined at each
start-up, and a frozen dataclass costs about 1 ms a class to generate (its ``__init__``,
``__setattr__``, ...); a record shares :class:`Record`'s constructor, repr, equality and hash instead.

:func:`decode_row` is the one row decoder: JSON text columns become values (an empty column its
empty value), boolean columns become ``bool`` (SQLite stores 0/1).
"""

from __future__ import annotations

import dataclasses
import json
import reprlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_: Any) -> Callable[[Any], Any]:
        return lambda decorated: decorated


T = TypeVar("T", bound="Record")


def field_names(cls: type) -> tuple[str, ...]:
    """The field names of a record class, in order."""
    names: tuple[str, ...] = cls.__record_names__  # type: ignore[attr-defined]
    return names


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):  # postponed annotations (``from __future__ import annotations``)
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return annotation is ClassVar or getattr(annotation, "__origin__", None) is ClassVar


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: type[T]) -> type[T]:
    """Make the :class:`Record` subclass ``cls`` a record: its annotated class attributes (ClassVars
    aside) are its fields, after those of the record it extends, with their defaults
    (``dataclasses.field(default_factory=...)`` for a mutable one). The class gets the fields as
    ``dataclasses.Field`` objects (so ``dataclasses.fields``/``asdict``/``replace`` work) and no
    method of its own."""
    fields: dict[str, dataclasses.Field[Any]] = {}
    for base in reversed(cls.__mro__[1:]):
        fields.update(base.__dict__.get("__dataclass_fields__", {}))
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        default = cls.__dict__.get(name, dataclasses.MISSING)
        spec = default if isinstance(default, dataclasses.Field) else dataclasses.field(default=default)
        spec.name, spec.type = name, annotation
        spec._field_type = dataclasses._FIELD  # type: ignore[attr-defined]  # what dataclasses.fields() lists
        fields[name] = spec
        if isinstance(default, dataclasses.Field):  # as a dataclass: the class attribute is the default
            if spec.default is dataclasses.MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
    names = tuple(fields)
    cls.__dataclass_fields__ = fields  # type: ignore[attr-defined]
    cls.__record_names__ = names  # type: ignore[attr-defined]
    cls.__record_defaults__ = {  # type: ignore[attr-defined]
        n: f.default for n, f in fields.items() if f.default is not dataclasses.MISSING
    }
    cls.__record_factories__ = {  # type: ignore[attr-defined]
        n: f.default_factory for n, f in fields.items() if f.default_factory is not dataclasses.MISSING
    }
    cls.__match_args__ = names  # type: ignore[attr-defined]
    return cls


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Record(dict):  # type: ignore[type-arg]
    """Base of the records (made with :func:`record`): frozen, typed fields that are also its
    (read-only) mapping. Constructed as a dataclass is (fields by position or keyword, defaults
    filled in); repr, equality and hash are a dataclass's.

    A subclass names its JSON columns in ``JSON_COLUMNS`` (column → the factory of its empty value,
    or None to keep NULL as None) and its boolean columns in ``BOOL_COLUMNS``; ``from_row`` decodes a
    row with them and ignores columns that are not fields."""

    __slots__ = ()
    __record_names__: ClassVar[tuple[str, ...]] = ()
    __record_defaults__: ClassVar[dict[str, Any]] = {}
    __record_factories__: ClassVar[dict[str, Callable[[], Any]]] = {}
    JSON_COLUMNS: ClassVar[Mapping[str, Callable[[], Any] | None]] = {}
    BOOL_COLUMNS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        names = cls.__record_names__
        given = kwargs
        if args:
            if len(args) > len(names):
                raise TypeError(f"{cls.__name__}() takes {len(names)} positional arguments but {len(args)} were given")
            given = dict(zip(names, args, strict=False))  # no more args than names: checked
            for name in kwargs:
                if name in given:
                    raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
            given.update(kwargs)
        values: dict[str, Any] = {}
        missing, found = [], 0
        for name in names:
            if name in given:
                values[name] = given[name]
                found += 1
            elif name in cls.__record_defaults__:
                values[name] = cls.__record_defaults__[name]
            elif name in cls.__record_factories__:
                values[name] = cls.__record_factories__[name]()
            else:
                missing.append(name)
        if missing:
            raise TypeError(f"{cls.__name__}() missing required argument(s): {', '.join(map(repr, missing))}")
        if found < len(given):
            unknown = next(name for name in given if name not in values)
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {unknown!r}")
        dict.update(self, values)  # the mapping
        self.__dict__.update(values)  # the attributes (the two never change: see __setattr__ and _frozen)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def _frozen(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"a {type(self).__name__} record cannot be changed")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _frozen  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), self._values()

    def __copy__(self) -> Record:
        return self

    def _values(self) -> tuple[Any, ...]:
        return tuple(dict.__getitem__(self, name) for name in type(self).__record_names__)

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={dict.__getitem__(self, name)!r}" for name in type(self).__record_names__)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (nested records as dicts, tuples as lists)."""
        return {name: _plain(value) for name, value in dict.items(self)}

    @classmethod
    def from_row(cls: type[T], row: Any, **extra: Any) -> T:
        """The record of a table row (or a mapping of one), decoded; ``extra`` fields added."""
        names = cls.__record_names__
        values = decode_row(row, cls.JSON_COLUMNS, cls.BOOL_COLUMNS)
        values.update(extra)
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def pick(cls: type[T], source: Mapping[str, Any], **extra: Any) -> T:
        """A record of this class from the fields of ``source`` it has (another record, a mapping)."""
        names = cls.__record_names__
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
