"""Search spaces: ``sweep.search_space`` expressions and command-line sweeps, as parameter domains.

``choice(a, b, ...)``, ``uniform(low, high)``, ``loguniform(low, high)``, ``quniform(low, high, q)``,
``randint(low, high)`` (an integer in [low, high)); on the command line ``key=a,b,c`` is a choice,
``key=range(start, stop[, step])`` a choice of integers and ``key=interval(low, high)`` a uniform.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mltrain.errors import ConfigError

KINDS = ("choice", "uniform", "loguniform", "quniform", "randint")
_EXPR = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.S)
_PLAIN = re.compile(r"^[\w.\-/:]+$")


@dataclass(frozen=True)
class Domain:
    kind: str  # one of KINDS
    args: tuple[Any, ...]  # choice: the values; uniform/loguniform: low, high; quniform: low, high, q; randint

    @property
    def values(self) -> list[Any]:
        """Every value (grid sampling): choice values only."""
        if self.kind != "choice":
            raise ConfigError(
                f"a grid sweep needs choice(...) values, not {self.kind}(...)",
                hint="use +sweep=random or +sweep=bayesian for continuous ranges",
            )
        return list(self.args)


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text in ("true", "false"):
        return text == "true"
    return text


def parse_domain(key: str, expr: Any) -> Domain:
    """The domain of ``sweep.search_space.<key>``; a clear error naming the key otherwise."""
    if isinstance(expr, (list, tuple)):
        return Domain("choice", tuple(expr))
    match = _EXPR.match(str(expr))
    if not match or match.group(1) not in KINDS:
        raise ConfigError(
            f"sweep.search_space.{key}: {expr!r} is not a search expression",
            hint="use choice(a, b), uniform(low, high), loguniform(low, high), quniform(low, high, q) or "
            "randint(low, high)",
        )
    kind = match.group(1)
    args = tuple(_scalar(a) for a in match.group(2).split(",") if a.strip())
    want = {"uniform": 2, "loguniform": 2, "quniform": 3, "randint": 2}.get(kind)
    if kind == "choice" and not args or want is not None and len(args) != want:
        raise ConfigError(f"sweep.search_space.{key}: {kind} takes {want or 'one or more'} values, got {expr!r}")
    if kind != "choice":
        if not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise ConfigError(f"sweep.search_space.{key}: {kind} takes numbers, got {expr!r}")
        if not args[0] < args[1] or kind == "loguniform" and args[0] <= 0:
            raise ConfigError(f"sweep.search_space.{key}: {expr!r} needs low < high (and low > 0 for loguniform)")
    return Domain(kind, args)


def parse_space(space: Mapping[str, Any] | None) -> dict[str, Domain]:
    return {str(k): parse_domain(str(k), v) for k, v in (space or {}).items()}


def command_line_space(arguments: list[str]) -> tuple[dict[str, Domain], list[str]]:
    """Split command-line overrides into swept domains and fixed overrides (Hydra's parser)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    domains: dict[str, Domain] = {}
    fixed: list[str] = []
    for override in OverridesParser.create().parse_overrides(arguments):
        if not override.is_sweep_override():
            fixed.append(override.input_line or f"{override.get_key_element()}={override.get_value_element_as_str()}")
            continue
        if override.is_hydra_override():
            raise ConfigError(
                f"sweeping over Hydra's configuration is not supported: {override.input_line!r}",
                hint="sweep over the job's keys (job.arguments.NAME=a,b) and set hydra.* keys once",
            )
        key = override.get_key_element()
        value = override.value()
        if isinstance(value, (ChoiceSweep, RangeSweep)):
            domains[key] = Domain("choice", tuple(override.sweep_iterator(transformer=_plain)))
        elif isinstance(value, IntervalSweep):
            domains[key] = Domain("uniform", (value.start, value.end))
        else:
            raise ConfigError(f"cannot sweep {override.input_line!r}", hint="use key=a,b,c, range() or interval()")
    return domains, fixed


def _plain(element: Any) -> Any:
    """A parsed sweep element as the value it stands for: a quoted string's text (Hydra's parser
    keeps the quotes, as a QuotedString), also inside lists and dicts."""
    from hydra.core.override_parser.types import QuotedString

    if isinstance(element, QuotedString):
        return element.text
    if isinstance(element, list):
        return [_plain(e) for e in element]
    if isinstance(element, dict):
        return {_plain(k): _plain(v) for k, v in element.items()}
    return element


def format_value(value: Any) -> str:
    """A value as it is written in an override (a string that is not plain is quoted as Hydra reads it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _PLAIN.match(text) and not (isinstance(value, str) and _other_type(text)):
        return text
    from hydra.core.override_parser.types import Quote, QuotedString

    return QuotedString(text, Quote.single).with_quotes()


def _other_type(text: str) -> bool:
    """Whether Hydra reads ``text``, unquoted, as something other than that string (a number, a
    boolean, null)."""
    if text.lower() in ("true", "false", "null"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def overrides_of(params: Mapping[str, Any]) -> list[str]:
    return [f"{key}={format_value(value)}" for key, value in params.items()]


def grid(domains: Mapping[str, Domain]) -> Iterator[dict[str, Any]]:
    """Every combination of the choice domains, the first key varying slowest (as Hydra's sweeper)."""
    keys = list(domains)
    for combo in itertools.product(*(domains[k].values for k in keys)):
        yield dict(zip(keys, combo, strict=True))
