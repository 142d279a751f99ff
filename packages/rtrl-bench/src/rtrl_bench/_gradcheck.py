"""``rtrl-bench gradcheck``: every cell x every RTRL method against full BPTT."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

THRESHOLD = 1e-9


@dataclasses.dataclass(frozen=True)
class GradcheckRow:
    """One cell and method.

    Attributes:
        cell: the cell's name in ``rtrl_cells.example_cells``.
        method: ``"online"`` or ``"chunked"``.
        max_rel_error: max relative error of the parameter gradient against full
            BPTT over the whole history (float64).
    """

    cell: str
    method: str
    max_rel_error: float

    @property
    def ok(self) -> bool:
        return self.max_rel_error <= THRESHOLD


def run_gradcheck(
    seed: int = 0,
    methods: Sequence[str] = ("online", "chunked"),
    segments: int = 3,
    length: int = 6,
) -> list[GradcheckRow]:
    """Checks every example cell with every RTRL method, in float64.

    Each check differentiates a loss on the last of ``segments`` segments (carries
    passed across calls, a reset inside the second) and compares with one BPTT
    unroll over the whole history.
    """
    import jax

    import rtrl_cells as rc

    rows = []
    # float64 for this check only: the setting is restored afterwards, so that
    # whatever runs next in the process keeps its own precision.
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(seed)
        for name, make in rc.example_cells(key).items():
            cell = make()
            for method in methods:
                err = rc.gradient_error(
                    cell, method, jax.random.fold_in(key, 1), segments, length
                )
                rows.append(GradcheckRow(name, method, err))
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
