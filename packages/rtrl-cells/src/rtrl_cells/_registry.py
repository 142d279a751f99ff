"""The cell registry: every cell a configuration, a check or a benchmark can name.

A cell is added in one place, :func:`register_cell`; from there it appears in
:func:`example_cells` (and so in ``rtrl-bench gradcheck`` and the property
suite), in the benchmarks' choices, and in every configuration that names a
cell (rtrl-agents' ``CoreConfig.cell``, rtrl-bench's ``SequenceConfig.cell``),
which validates its name against :data:`CELLS`.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
from collections.abc import Callable, Mapping
from typing import Any, cast

import jax
from jaxtyping import PRNGKeyArray

from ._cell import AbstractCell, AbstractElementwiseCell
from ._dense import GRU, LSTM
from ._elstm import ELSTM
from ._lru import LRU, OnlineLRU
from ._rtu import RTU
from ._stack import Stack

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
# What every registered constructor takes; anything else is an option.
_STANDARD = ("input_size", "hidden_size", "key", "dtype")
# A configuration's word for "no cell" (a feedforward baseline): never a cell.
RESERVED = ("none",)


@dataclasses.dataclass(frozen=True)
class CellKind:
    """A registered cell class, and the name configurations call it by.

    Attributes:
        name: lower-case name, what a configuration holds (``"elstm"``).
        cls: the class; built as ``cls(input_size=, hidden_size=, key=, dtype=,
            **options)``.
        examples: named option sets that the checks and benchmarks build, as
            ``(variant, options)`` pairs; the variant ``""`` is the defaults.
        dense: exact RTRL of this cell is dense (``O(N^4)`` a step): benchmarks
            that sweep widths leave it out.
    """

    name: str
    cls: type[AbstractElementwiseCell]
    examples: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (("", ()),)
    dense: bool = False

    @property
    def options(self) -> tuple[str, ...]:
        """Keyword options the constructor takes besides the standard ones."""
        params = inspect.signature(self.cls.__init__).parameters.values()
        return tuple(
            p.name
            for p in params
            if p.name not in ("self", *_STANDARD)
            and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        )

    def make(
        self,
        *,
        input_size: int,
        hidden_size: int,
        key: PRNGKeyArray,
        dtype: Any = None,
        **options: Any,
    ) -> AbstractElementwiseCell:
        """A new cell of this kind.

        Raises:
            ValueError: (one line) for an option the constructor does not take.
        """
        for option in options:
            if option not in self.options:
                raise ValueError(
                    f"{self.cls.__name__} takes no option {option!r}; its options: "
                    f"{', '.join(self.options) or 'none'}."
                )
        # Every registered class takes the standard keywords (checked on
        # registration); its options are checked above.
        make = cast(Callable[..., AbstractElementwiseCell], self.cls)
        return make(
            input_size=input_size,
            hidden_size=hidden_size,
            key=key,
            dtype=dtype,
            **options,
        )


@dataclasses.dataclass(frozen=True)
class CellExample:
    """One registered kind with one of its option sets, under a display label.

    Attributes:
        label: ``"ELSTM"``, or ``"RTU(linear)"`` for a named variant.
        kind: the registered kind.
        options: the constructor options of the variant.
    """

    label: str
    kind: CellKind
    options: tuple[tuple[str, Any], ...]

    def make(
        self, *, input_size: int, hidden_size: int, key: PRNGKeyArray, dtype=None
    ) -> AbstractElementwiseCell:
        """A new cell: the kind with this example's options."""
        return self.kind.make(
            input_size=input_size,
            hidden_size=hidden_size,
            key=key,
            dtype=dtype,
            **dict(self.options),
        )


_CELLS: dict[str, CellKind] = {}
#: Every registered cell kind, by name (read-only; add with :func:`register_cell`).
CELLS: Mapping[str, CellKind] = types.MappingProxyType(_CELLS)


def register_cell(
    name: str,
    cls: type[AbstractElementwiseCell],
    *,
    examples: Mapping[str, Mapping[str, Any]] | None = None,
    dense: bool = False,
) -> CellKind:
    """Adds a cell class to :data:`CELLS` under ``name``.

    Run :func:`rtrl_cells.check_cell` on an instance first (in your tests): the
    registry trusts it.

    Args:
        name: lower-case, ``[a-z][a-z0-9_-]*``, not yet registered, not
            ``"none"`` (a configuration's word for no cell).
        cls: an element-wise cell class whose constructor takes keyword
            arguments ``input_size``, ``hidden_size``, ``key`` and ``dtype``.
        examples: ``{variant: options}``, the option sets checks and benchmarks
            build (default: the defaults alone, ``{"": {}}``).
        dense: exact RTRL of the cell is dense (``num_units == 1``).

    Returns:
        The new :class:`CellKind`.

    Raises:
        ValueError: (one line) for a bad or taken name, a class that is not an
            element-wise cell, a constructor without the standard arguments, or
            an example option the constructor does not take.
    """
    if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED:
        raise ValueError(
            f"cell name {name!r} must match [a-z][a-z0-9_-]* and not be one of "
            f"{', '.join(RESERVED)}."
        )
    if name in _CELLS:
        raise ValueError(
            f"a cell is already registered as {name!r} ({_CELLS[name].cls.__name__}); "
            "pick another name."
        )
    if not (isinstance(cls, type) and issubclass(cls, AbstractElementwiseCell)):
        raise ValueError(
            f"register_cell({name!r}, ...) takes a subclass of "
            f"rtrl_cells.AbstractElementwiseCell, got {cls!r}."
        )
    params = inspect.signature(cls.__init__).parameters
    missing = [a for a in _STANDARD if a not in params]
    if missing:
        raise ValueError(
            f"{cls.__name__}.__init__ must take keyword arguments "
            f"{', '.join(_STANDARD)}; it lacks {', '.join(missing)}."
        )
    examples = {"": {}} if examples is None else examples
    kind = CellKind(
        name,
        cls,
        tuple((v, tuple(dict(o).items())) for v, o in examples.items()),
        bool(dense),
    )
    for _, options in kind.examples:
        for option, _ in options:
            if option not in kind.options:
                raise ValueError(
                    f"example option {option!r} of {name!r}: {cls.__name__} takes "
                    f"no such option; its options: {', '.join(kind.options) or 'none'}."
                )
    _CELLS[name] = kind
    return kind


def unregister_cell(name: str) -> None:
    """Removes ``name`` from :data:`CELLS` (for tests that register their own)."""
    _CELLS.pop(cell_kind(name).name)


def cell_kind(name: str) -> CellKind:
    """The registered kind called ``name``.

    Raises:
        ValueError: (one line) for an unknown name, listing the registered ones.
    """
    kind = _CELLS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise ValueError(
            f"unknown cell {name!r}: expected one of {', '.join(_CELLS)} "
            "(rtrl_cells.register_cell adds one)."
        )
    return kind


def cell_kind_of(cell: AbstractCell) -> CellKind | None:
    """The registered kind whose class ``cell`` is an instance of, if any."""
    for kind in _CELLS.values():
        if type(cell) is kind.cls:
            return kind
    return None


def cell_examples(dense: bool | None = None) -> dict[str, CellExample]:
    """Every registered kind with each of its option sets, by display label.

    Args:
        dense: ``None``: all; ``True`` / ``False``: only dense / element-wise
            kinds.
    """
    out = {}
    for kind in _CELLS.values():
        if dense is not None and kind.dense != dense:
            continue
        for variant, options in kind.examples:
            label = kind.cls.__name__ + (f"({variant})" if variant else "")
            out[label] = CellExample(label, kind, options)
    return out


def example_cells(
    key: PRNGKeyArray, input_size: int = 3, hidden_size: int = 4
) -> dict[str, Callable[[], AbstractCell]]:
    """Small instances of every registered cell and a few stacks, by label.

    Every registered kind in each of its example option sets, then three exact
    stacks (mixed block sizes, dense layers, complex twin traces below another
    layer). Constructors, built lazily.
    """
    D, N = input_size, hidden_size
    out: dict[str, Callable[[], AbstractCell]] = {}
    for i, (label, ex) in enumerate(cell_examples().items()):
        # Offset 100: with the first keys, the relu RTU's four units were silent
        # at the segment boundaries of the checks' data, so that the history
        # reached none of theta_log's gradient and its exactness check proved
        # nothing (rc.testing.CellTests.test_truncated_bptt_is_not_exact).
        k = jax.random.fold_in(key, 100 + i)
        out[label] = lambda ex=ex, k=k: ex.make(input_size=D, hidden_size=N, key=k)
    ks = jax.random.split(jax.random.fold_in(key, 10_000), 7)
    out["Stack(ELSTM,ELSTM)"] = lambda: Stack(
        [
            ELSTM(input_size=D, hidden_size=N, key=ks[0]),
            ELSTM(input_size=N, hidden_size=N - 1, key=ks[1]),
        ]
    )
    out["Stack(ELSTM,RTU,GRU)"] = lambda: Stack(
        [
            ELSTM(input_size=D, hidden_size=N, key=ks[2]),
            RTU(input_size=N, hidden_size=2, key=ks[3]),
            GRU(input_size=4, hidden_size=2, key=ks[4]),
        ]
    )
    # Complex traces (LRU, linear RTU) below another layer: the cross-layer
    # blocks are built from the quarter-turned twin traces.
    out["Stack(LRU,RTU(linear))"] = lambda: Stack(
        [
            LRU(input_size=D, hidden_size=N, key=ks[5]),
            RTU(input_size=D, hidden_size=2, nonlinear=False, key=ks[6]),
        ]
    )
    return out


# The built-in cells. A new built-in cell is one more line here.
register_cell("elstm", ELSTM)
register_cell("lru", LRU)
register_cell("online-lru", OnlineLRU)
register_cell(
    "rtu",
    RTU,
    examples={
        "relu": {},
        "tanh": {"activation": "tanh"},
        "linear": {"nonlinear": False},
    },
)
register_cell("gru", GRU, dense=True)
register_cell("lstm", LSTM, dense=True)
