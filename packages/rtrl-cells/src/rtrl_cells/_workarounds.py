"""Switches for the engine's backend workarounds, so that each can be measured.

The engine's maths (``rtrl_cells._engine``) is the same under every setting: a
workaround changes how XLA is led to compute it (storage forms, optimization
barriers, how sums are split), never what is computed, and the tests check that
every setting gives the same values. Each was added for XLA's CPU backend as of
jax 0.10 and was measured then; a later JAX release or another backend (a GPU)
may not need it. ``rtrl-bench speed --ab NAME`` times every gradient method
with the switch on and off, interleaved in one process; a workaround that no
longer pays should be switched off by default there, then removed.

The switches are read when a function is traced: a function that ``jax.jit``
compiled before a change keeps its compiled form (same values either way). The
carry's structure follows ``compact_traces``, so a carry made under one setting
does not fit an unroll traced under the other (JAX then raises a structure
mismatch).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator


@dataclasses.dataclass(frozen=True)
class Workarounds:
    """The engine's backend workarounds, each on by default.

    Attributes:
        compact_traces: store a one-component ``diag`` trace with its parameter's
            shape (no size-1 axis) and a trace of a few components per unit (LRU,
            RTU: ``k <= 4``) as a tuple of ``k`` arrays, instead of one
            ``(k, *P.shape)`` array. Behind a batch axis, XLA's CPU backend copied
            a size-1-axis trace once more per update (a permuted layout), and
            copied each component out of a batched ``(B, k, ...)`` array before
            contracting it.
        separate_batch_sums: in the carried traces' gradient ``lambda_0 . E_0``,
            give each trace product its own copy of ``lambda_0`` (an optimization
            barrier), and sum each state component's products over the batch on
            their own, arriving on their own copy of the parameters (extra
            custom-VJP inputs that only receive cotangents; JAX adds them up).
            Without it, XLA's CPU backend made each batch sum a YNNPACK reduction
            of a sum of products, which runs 10-20x below memory speed.
        contiguous_adjoints: before the trace einsum ``sum_t g_t x_t^T``
            (``run_segment``), materialise each component of the projection's
            adjoints on its own (an optimization barrier), so that XLA copies them
            batch-major and contiguous instead of building each operand by a
            strided gather from the scan's time-stacked output.
    """

    compact_traces: bool = True
    separate_batch_sums: bool = True
    contiguous_adjoints: bool = True

    @staticmethod
    def names() -> tuple[str, ...]:
        """The switches' names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(Workarounds))


_current = Workarounds()


def workarounds() -> Workarounds:
    """The engine's current switches (read when a function is traced)."""
    return _current


@contextlib.contextmanager
def use_workarounds(**switches: bool) -> Iterator[Workarounds]:
    """Within the block, trace the engine with some workarounds switched.

    ``with rc.use_workarounds(separate_batch_sums=False): ...``. Functions traced
    inside (a first ``jax.jit`` call, ``init_carry``) use the new setting; the
    previous one is back on exit.

    Raises:
        ValueError: (one line) for an unknown switch or a value that is not a bool.
    """
    global _current
    known = Workarounds.names()
    for name, value in switches.items():
        if name not in known:
            raise ValueError(
                f"unknown engine workaround {name!r}: expected one of "
                f"{', '.join(known)}."
            )
        if not isinstance(value, bool):
            raise ValueError(f"workaround {name} must be True or False, got {value!r}.")
    previous = _current
    _current = dataclasses.replace(previous, **switches)
    try:
        yield _current
    finally:
        _current = previous
