"""The complexity study's configuration, methods and result types (see
``_complexity``)."""

from __future__ import annotations

import dataclasses

import rtrl_cells as rc

#: A scan of ``cell.step``: exact RTRL one step at a time, as a streaming learner.
STEP = "step"


@dataclasses.dataclass(frozen=True)
class Arm:
    """What one study method runs.

    Attributes:
        structure: ``"exact"`` (:class:`rtrl_cells.Stack`), ``"local"``
            (:class:`rtrl_cells.LayerLocalApproxStack`) or ``"dense"`` (one dense
            cell).
        method: a gradient method's name (``unroll``), or :data:`STEP`.
    """

    structure: str
    method: str

    @property
    def traces(self) -> bool:
        """Whether it carries RTRL traces (BPTT does not)."""
        return self.method == STEP or rc.method(self.method).advances_traces


def _arms() -> dict[str, Arm]:
    arms = {f"exact-{STEP}": Arm("exact", STEP)}
    for m in rc.METHODS.values():
        if m.exact:
            arms[f"exact-{m.name}"] = Arm("exact", m.name)
    arms["local"] = Arm("local", rc.CHUNKED.name)
    for m in rc.METHODS.values():
        if not m.advances_traces:
            arms[m.name] = Arm("local", m.name)  # BPTT: the stack with fewest traces
    arms[f"dense-{STEP}"] = Arm("dense", STEP)
    arms[f"dense-{rc.CHUNKED.name}"] = Arm("dense", rc.CHUNKED.name)
    return arms


#: The study's methods, by name.
ARMS: dict[str, Arm] = _arms()
METHODS = tuple(ARMS)
WIDTHS = (32, 64, 128, 256)
LAYERS = (1, 2, 3)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One (method, depth) pair of the grid and the widest ``N`` timed for it.

    Attributes:
        method: one of :data:`METHODS`.
        layers: number of stacked layers ``L`` (1 for the dense GRU).
        max_width: widths above this get their memory counted but are not timed
            (to keep the default grid within minutes); ``None``: no cap.
    """

    method: str
    layers: int
    max_width: int | None = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(
                f"unknown method {self.method!r}: expected one of {', '.join(METHODS)}."
            )
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {self.layers}.")
        if ARMS[self.method].structure == "dense" and self.layers != 1:
            raise ValueError("the dense GRU is studied as a single layer (layers=1).")


def _entries(max_widths: dict[tuple[str, int], int | None]) -> tuple[Entry, ...]:
    return tuple(Entry(m, L, w) for (m, L), w in max_widths.items())


# The default grid finishes in about ten minutes on a 2-core CPU: the cheap
# methods run at every width; exact RTRL of deep stacks and dense RTRL stop where
# one call would take tens of seconds (their memory is still counted).
DEFAULT_ENTRIES = _entries(
    {
        ("bptt", 1): None,
        ("exact-step", 1): None,
        ("exact-chunked", 1): None,
        ("bptt", 2): None,
        ("local", 2): None,
        ("exact-step", 2): 128,
        ("exact-chunked", 2): 128,
        ("bptt", 3): None,
        ("local", 3): None,
        ("exact-step", 3): 128,
        ("exact-chunked", 3): 64,
        ("dense-step", 1): 128,
        ("dense-chunked", 1): 128,
    }
)
FULL_ENTRIES = _entries(
    {
        (m, L): None
        for m, arm in ARMS.items()
        for L in ((1,) if arm.structure == "dense" else LAYERS)
    }
)


@dataclasses.dataclass(frozen=True)
class ComplexityConfig:
    """What the study runs.

    Attributes:
        entries: the (method, L) pairs and their width caps.
        widths: hidden sizes ``N``.
        input_size: ``D``, the width of the first layer's input.
        steps: rollout length ``T``.
        stream_steps: rollout length of the ``*-step`` methods, whose cost per
            step does not depend on ``T`` (a shorter one keeps the grid short);
            ``None``: ``steps``.
        batch: streams ``B`` (vmapped).
        rounds: timed runs of each configuration (interleaved), after a warm-up;
            configurations slower than ``slow_s`` a call get ``min(rounds, 3)``.
        slow_s: see ``rounds``.
        budget_gb: configurations whose estimated working set exceeds this are
            not run; the table says what they would need.
        memory_lengths: rollout lengths of the compile-only memory-vs-T check
            (BPTT against online RTRL, ``L = 2``, ``N = memory_width``); empty to
            skip it.
        memory_width: ``N`` of that check.
        seed: PRNG seed of parameters and inputs.
        cell: the layers' cell, a registered element-wise cell
            (``rtrl_cells.CELLS``; the theory's exponents are stated for
            ``"elstm"``).
        dense_cell: the ``dense-*`` methods' cell, a registered dense cell (the
            theory's: ``"gru"``).
    """

    entries: tuple[Entry, ...] = DEFAULT_ENTRIES
    widths: tuple[int, ...] = WIDTHS
    input_size: int = 64
    steps: int = 100
    stream_steps: int | None = 20
    batch: int = 4
    rounds: int = 5
    slow_s: float = 2.0
    budget_gb: float = 4.0
    memory_lengths: tuple[int, ...] = (25, 100, 400)
    memory_width: int = 64
    seed: int = 0
    cell: str = "elstm"
    dense_cell: str = "gru"

    def steps_for(self, method: str) -> int:
        """The rollout length ``T`` a method is timed over."""
        if ARMS[method].method == STEP and self.stream_steps is not None:
            return self.stream_steps
        return self.steps

    def __post_init__(self):
        for name in ("input_size", "steps", "batch", "rounds", "memory_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if self.stream_steps is not None and self.stream_steps <= 0:
            raise ValueError(f"stream_steps must be positive, got {self.stream_steps}.")
        if not self.widths or any(w <= 0 for w in self.widths):
            raise ValueError(f"widths must be positive ints, got {self.widths!r}.")
        if self.budget_gb <= 0:
            raise ValueError(f"budget_gb must be positive, got {self.budget_gb!r}.")
        for name, dense in (("cell", False), ("dense_cell", True)):
            names = [k for k, v in rc.CELLS.items() if v.dense == dense]
            if getattr(self, name) not in names:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} must be a registered "
                    f"{'dense' if dense else 'element-wise'} cell: one of "
                    f"{', '.join(names)}."
                )


@dataclasses.dataclass(frozen=True)
class ComplexityRow:
    """One configuration: a method, a depth, a width.

    Attributes:
        method, layers, N, D, T, B: the configuration.
        status: ``"ok"`` (timed), ``"over-budget"`` (estimated working set above
            the budget; not run), ``"not-timed"`` (above the entry's width cap;
            memory counted only) or ``"failed"`` (the note says why).
        trace_entries: RTRL trace entries per stream (``rtrl_cells.trace_size``;
            0 for BPTT).
        trace_bytes: ``4 * trace_entries``.
        carry_trace_bytes: bytes of the trace arrays of a real carry (one stream);
            ``None`` where none was built.
        time_per_step_s: median time of one gradient call over ``B`` streams,
            divided by ``T``.
        runs: timed runs behind the median.
        compiled_temp_bytes: the compiler's temporaries for the whole batch.
        compiled_total_bytes: arguments + outputs + temporaries, whole batch.
        estimated_bytes: the working-set estimate used for the budget.
        note: why a row was not run, or what failed.
    """

    method: str
    layers: int
    N: int
    D: int
    T: int
    B: int
    status: str
    trace_entries: int
    trace_bytes: int
    carry_trace_bytes: int | None
    time_per_step_s: float | None
    runs: int
    compiled_temp_bytes: int | None
    compiled_total_bytes: int | None
    estimated_bytes: int
    note: str = ""


@dataclasses.dataclass(frozen=True)
class LengthRow:
    """Compiled memory of one method at one rollout length (no run).

    Attributes:
        method: ``"bptt"``, ``"exact-step"`` or ``"exact-online"``.
        layers, N, D, B: the configuration. T: rollout length.
        compiled_temp_bytes: temporaries of the jitted gradient, whole batch.
    """

    method: str
    layers: int
    N: int
    D: int
    T: int
    B: int
    compiled_temp_bytes: int


@dataclasses.dataclass(frozen=True)
class Fit:
    """A growth exponent in ``N`` of one (method, L) and one quantity.

    Attributes:
        method, layers: the pair.
        quantity: ``"time"`` (per step), ``"trace"`` (trace bytes per stream,
            counted) or ``"compiled"`` (compiled temporaries per stream).
        exponent: log-log least-squares slope over all points.
        last_exponent: slope between the two widest points (closest to the
            asymptote); ``None`` with fewer than two.
        points: number of widths fitted.
        theory: the asymptotic exponent the theory predicts (``D`` fixed).
    """

    method: str
    layers: int
    quantity: str
    exponent: float
    last_exponent: float | None
    points: int
    theory: float | None


@dataclasses.dataclass(frozen=True)
class ComplexityResult:
    """Everything one run of the study produced.

    Attributes:
        config: what was run.
        rows: one per (entry, width).
        lengths: the memory-vs-T check.
        fits: the fitted exponents.
        seconds: wall time of the study.
    """

    config: ComplexityConfig
    rows: tuple[ComplexityRow, ...]
    lengths: tuple[LengthRow, ...]
    fits: tuple[Fit, ...]
    seconds: float


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"
