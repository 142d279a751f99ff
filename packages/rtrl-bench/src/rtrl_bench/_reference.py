"""The seed's published numbers, shipped as package data.

``data/irie2024_results.csv`` is a copy of Tables 1 and 2 of Irie, Gopalakrishnan
and Schmidhuber, "Exploring the Promise and Limits of Real-Time Recurrent Learning"
(ICLR 2024, arXiv:2305.19044, first version), including the IMPALA and R2D2 rows
the paper quotes from Espeholt et al. (2018) and Kapturowski et al. (2019). Frame
budgets are environment frames (agent steps x action repeat).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
from collections.abc import Callable
from importlib import resources
from typing import TypeVar

CITATION = (
    "Irie, Gopalakrishnan and Schmidhuber (2024). Exploring the Promise and Limits "
    "of Real-Time Recurrent Learning. ICLR 2024, arXiv:2305.19044 (Tables 1 and 2)."
)
"""Where the reference numbers come from."""

_FILE = "irie2024_results.csv"
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class ReferenceResult:
    """One published score.

    Attributes:
        table: the paper's table (1: DMLab memory tasks, 2: Atari and keys_doors).
        domain: ``"dmlab"`` or ``"atari"``.
        task: the level or game, e.g. ``"rooms_watermaze"``, ``"Breakout"``.
        system: ``"eLSTM-RTRL"``, ``"eLSTM-TBPTT"``, ``"feedforward"``,
            ``"IMPALA"``, ``"R2D2"``, ``"R2D2+"``.
        frames: the environment-frame budget of the result.
        unroll: the rollout length M, if the paper gives one.
        mean: the mean score.
        std: the standard deviation over seeds, if given.
        seeds: the number of training seeds, if given.
        note: provenance or protocol notes from the table.
    """

    table: int
    domain: str
    task: str
    system: str
    frames: float
    unroll: int | None
    mean: float
    std: float | None
    seeds: int | None
    note: str

    def __post_init__(self) -> None:
        if self.table not in (1, 2):
            raise ValueError(f"ReferenceResult.table must be 1 or 2, got {self.table}.")
        if not self.frames > 0:
            raise ValueError(f"ReferenceResult.frames must be > 0, got {self.frames}.")
        if self.std is not None and self.std < 0:
            raise ValueError(f"ReferenceResult.std must be >= 0, got {self.std}.")


def _opt(value: str, kind: Callable[[float], _T]) -> _T | None:
    return kind(float(value)) if value.strip() else None


@functools.cache
def load_reference() -> tuple[ReferenceResult, ...]:
    """All rows of the seed's Tables 1 and 2, in the paper's order.

    Returns:
        The published results as typed, frozen rows.
    """
    text = resources.files("rtrl_bench").joinpath("data", _FILE).read_text("utf-8")
    rows = []
    for r in csv.DictReader(io.StringIO(text)):
        rows.append(
            ReferenceResult(
                table=int(r["table"]),
                domain=r["domain"],
                task=r["task"],
                system=r["system"],
                frames=float(r["frames"]),
                unroll=_opt(r["unroll_M"], int),
                mean=float(r["mean"]),
                std=_opt(r["std"], float),
                seeds=_opt(r["seeds"], int),
                note=r["note"],
            )
        )
    return tuple(rows)


def reference_results(
    domain: str | None = None, task: str | None = None
) -> tuple[ReferenceResult, ...]:
    """The published rows of one domain and/or task (case-insensitive).

    Args:
        domain: keep rows of this domain (``"dmlab"``, ``"atari"``), or all.
        task: keep rows of this task (``"Breakout"``, ``"rooms_watermaze"``), or all.

    Returns:
        The matching rows, in the paper's order.
    """
    return tuple(
        r
        for r in load_reference()
        if (domain is None or r.domain.lower() == domain.lower())
        and (task is None or r.task.lower() == task.lower())
    )
