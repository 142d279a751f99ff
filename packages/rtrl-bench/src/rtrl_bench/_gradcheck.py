"""``rtrl-bench gradcheck``: every cell x every RTRL method against full BPTT.

Every cell is every entry of ``rtrl_cells.example_cells`` (the registry's cells
with their example option sets, and a few stacks); every RTRL method is every
exact method of ``rtrl_cells.METHODS``. A cell registered with
``rtrl_cells.register_cell`` before the check runs is checked too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

THRESHOLD = 1e-9


@dataclasses.dataclass(frozen=True)
class GradcheckRow:
    """One cell and method.

    Attributes:
        cell: the cell's label in ``rtrl_cells.example_cells``.
        method: an exact gradient method of ``rtrl_cells.METHODS``.
        max_rel_error: max relative error of the parameter gradient against full
            BPTT over the whole history (float64).
    """

    cell: str
    method: str
    max_rel_error: float

    @property
    def ok(self) -> bool:
        return self.max_rel_error <= THRESHOLD


def exact_methods() -> tuple[str, ...]:
    """The names of the exact gradient methods of ``rtrl_cells.METHODS``."""
    import rtrl_cells as rc

    return tuple(name for name, m in rc.METHODS.items() if m.exact)


def run_gradcheck(
    seed: int = 0,
    methods: Sequence[str] | None = None,
    segments: int = 3,
    length: int = 6,
    cells: Sequence[str] | None = None,
) -> list[GradcheckRow]:
    """Checks every example cell with every RTRL method, in float64.

    Each check differentiates a loss on the last of ``segments`` segments (carries
    passed across calls, a reset inside the second) and compares with one BPTT
    unroll over the whole history.

    Args:
        methods: gradient method names (default: every exact method).
        cells: labels of ``rtrl_cells.example_cells`` (default: all).

    Raises:
        ValueError: (one line) for an unknown cell label or method.
    """
    import jax

    import rtrl_cells as rc

    methods = [rc.method(m).name for m in (methods or exact_methods())]
    rows = []
    # float64 for this check only: the setting is restored afterwards, so that
    # whatever runs next in the process keeps its own precision.
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(seed)
        examples = rc.example_cells(key)
        unknown = [c for c in cells or () if c not in examples]
        if unknown:
            raise ValueError(
                f"unknown cell {unknown[0]!r}: expected one of {', '.join(examples)}."
            )
        for name, make in examples.items():
            if cells and name not in cells:
                continue
            errs = rc.gradient_errors_by_method(
                make(), methods, jax.random.fold_in(key, 1), segments, length
            )
            for method in methods:
                rows.append(GradcheckRow(name, method, max(errs[method].values())))
    return rows


def format_table(rows: Sequence[GradcheckRow]) -> str:
    """Markdown table: cells down, methods across, max relative error."""
    methods = list(dict.fromkeys(r.method for r in rows))
    cells = list(dict.fromkeys(r.cell for r in rows))
    by = {(r.cell, r.method): r for r in rows}
    lines = [
        "| cell | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for cell in cells:
        cols = []
        for m in methods:
            r = by[(cell, m)]
            cols.append(f"{r.max_rel_error:.1e}" + ("" if r.ok else " FAIL"))
        lines.append(f"| {cell} | " + " | ".join(cols) + " |")
    return "\n".join(lines)
