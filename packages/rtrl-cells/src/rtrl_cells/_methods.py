"""The gradient methods: one vocabulary for cells, agents, benchmarks and tools.

Every method name any package accepts is defined here, once: the three ways a cell
unrolls (``"online"``, ``"chunked"``, ``"bptt"``) and the names reinforcement
learning gives them (``"rtrl-online"``, ``"rtrl"``, ``"tbptt"``), as aliases of the
same objects. Configurations hold a name (JSON needs one) and resolve it with
:func:`method`; code that branches on a method asks the object (``exact``,
``advances_traces``, ``step_method``), never compares names.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class GradientMethod:
    """How a cell's parameter gradient is computed over an unrolled segment.

    Attributes:
        name: the canonical name, what ``AbstractCell.unroll(method=...)`` and
            every listing use.
        aliases: other names accepted for it (the reinforcement-learning names
            the agents' configurations hold).
        exact: the parameter gradient equals full backpropagation through the
            whole history (exact RTRL), across calls.
        advances_traces: ``unroll`` returns advanced RTRL traces (else it returns
            the traces it was given, untouched).
        summary: one line for listings and help texts.
        carry_gradient: the gradient also reaches the states of the carry
            ``unroll`` is given (the adjoint ``lambda_0`` of the segment's
            initial state); see :meth:`to_carry`.
    """

    name: str
    aliases: tuple[str, ...]
    exact: bool
    advances_traces: bool
    summary: str
    carry_gradient: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical name, then the aliases."""
        return (self.name, *self.aliases)

    @property
    def step_method(self) -> GradientMethod:
        """What a learner or actor that moves one observation at a time runs.

        RTRL methods advance the traces every step (:data:`ONLINE`, the per-step
        recursion); truncated BPTT advances the state alone (:data:`BPTT`).
        """
        return ONLINE if self.advances_traces else BPTT

    def to_carry(self) -> GradientMethod:
        """This method with the gradient reaching the carry's states too.

        ``unroll`` normally cuts the gradient at the carry it is given (no
        accidental backpropagation into an earlier call). A learner that
        stores each step's state but not its traces asks for the adjoint
        ``lambda`` of the stored state with ``BPTT.to_carry()`` and contracts it
        with the traces afterwards, in one pass over the trajectory the states
        came from (``AbstractCell.states_before``): the stale-trace term
        ``lambda . E`` of RTRL without a stored trace.

        Raises:
            ValueError: (one line) for a method that advances traces: it adds
                ``lambda_0 . E_0`` itself.
        """
        if self.advances_traces:
            raise ValueError(
                f"method {self.name!r} adds lambda_0 . E_0 from the carried "
                "traces itself; only 'bptt' passes the gradient to the carry "
                "(BPTT.to_carry(), then AbstractCell.states_before)."
            )
        return dataclasses.replace(self, carry_gradient=True)

    def __str__(self) -> str:
        return self.name


ONLINE = GradientMethod(
    "online",
    ("rtrl-online",),
    exact=True,
    advances_traces=True,
    summary="exact RTRL; inputs get one-step gradients (a scan of step)",
)
CHUNKED = GradientMethod(
    "chunked",
    ("rtrl", "rtrl-chunked"),
    exact=True,
    advances_traces=True,
    summary="exact RTRL at BPTT cost; inputs get BPTT gradients in the segment",
)
BPTT = GradientMethod(
    "bptt",
    ("tbptt",),
    exact=False,
    advances_traces=False,
    summary="truncated BPTT: gradients stop at the segment's start; traces unused",
)

#: Every gradient method by canonical name, in listing order.
METHODS: Mapping[str, GradientMethod] = types.MappingProxyType(
    {m.name: m for m in (ONLINE, CHUNKED, BPTT)}
)
_BY_NAME = {n: m for m in METHODS.values() for n in m.names}


def method_names(aliases: bool = True) -> tuple[str, ...]:
    """Every accepted method name: canonical names first, then the aliases.

    Args:
        aliases: include the aliases (what a configuration may hold).
    """
    names = tuple(METHODS)
    if aliases:
        names += tuple(a for m in METHODS.values() for a in m.aliases)
    return names


def method(name: str | GradientMethod) -> GradientMethod:
    """The :class:`GradientMethod` called ``name`` (a canonical name or an alias).

    Raises:
        ValueError: (one line) for an unknown name, listing the known ones.
    """
    if isinstance(name, GradientMethod):
        return name
    found = _BY_NAME.get(name) if isinstance(name, str) else None
    if found is None:
        raise ValueError(
            f"unknown method {name!r}: expected one of {', '.join(METHODS)} "
            f"(aliases: {', '.join(method_names()[len(METHODS) :])})."
        )
    return found
