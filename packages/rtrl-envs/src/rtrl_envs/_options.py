"""Validation of ``make(name, **options)`` against an options dataclass."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ._errors import InvalidOptionError, close_matches

T = TypeVar("T")


def parse_options(cls: type[T], name: str, options: dict[str, Any]) -> T:
    """Builds the frozen options dataclass ``cls`` from keyword options.

    Raises:
        InvalidOptionError: an option is not a field of ``cls`` (the message lists
            the allowed options and close matches), or ``cls`` rejected a value.
    """
    allowed = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in options:
        if key not in allowed:
            near = close_matches(key, allowed)
            hint = f" Did you mean {', '.join(near)}?" if near else ""
            raise InvalidOptionError(
                f"unknown option {key!r} for {name}; allowed options: "
                f"{', '.join(allowed) if allowed else '(none)'}.{hint}"
            )
    return cls(**options)


def check_int(
    option: str, value: Any, minimum: int, maximum: int | None = None
) -> None:
    """Raises InvalidOptionError unless ``value`` is an int in range."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    ok = ok and (maximum is None or value <= maximum)
    if not ok:
        upper = "" if maximum is None else f" and <= {maximum}"
        raise InvalidOptionError(
            f"option {option}={value!r} is invalid: allowed values are ints >= "
            f"{minimum}{upper}"
        )


def check_choice(option: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Raises InvalidOptionError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise InvalidOptionError(
            f"option {option}={value!r} is invalid: allowed values are "
            f"{', '.join(map(repr, choices))}"
        )


def check_bool(option: str, value: Any) -> None:
    """Raises InvalidOptionError unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise InvalidOptionError(
            f"option {option}={value!r} is invalid: allowed values are True, False"
        )
