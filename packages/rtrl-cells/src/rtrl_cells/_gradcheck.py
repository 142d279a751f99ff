"""Check a cell's RTRL gradients against full backpropagation through time."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._cell import AbstractCell
from ._dense import GRU, LSTM
from ._elstm import ELSTM
from ._lru import LRU
from ._rtu import RTU
from ._stack import Stack


def example_cells(
    key: PRNGKeyArray, input_size: int = 3, hidden_size: int = 4
) -> dict[str, Callable[[], AbstractCell]]:
    """Small instances of every exact cell, by name (constructors, built lazily)."""
    ks = jax.random.split(key, 8)
    D, N = input_size, hidden_size
    return {
        "ELSTM": lambda: ELSTM(input_size=D, hidden_size=N, key=ks[0]),
        "LRU": lambda: LRU(input_size=D, hidden_size=N, key=ks[1]),
        "RTU(relu)": lambda: RTU(input_size=D, hidden_size=N, key=ks[2]),
        "RTU(tanh)": lambda: RTU(
            input_size=D, hidden_size=N, activation="tanh", key=ks[3]
        ),
        "RTU(linear)": lambda: RTU(
            input_size=D, hidden_size=N, nonlinear=False, key=ks[4]
        ),
        "GRU": lambda: GRU(input_size=D, hidden_size=N - 1, key=ks[5]),
        "LSTM": lambda: LSTM(input_size=D, hidden_size=N - 1, key=ks[6]),
        "Stack(ELSTM,ELSTM)": lambda: Stack(
            [
                ELSTM(input_size=D, hidden_size=N, key=ks[7]),
                ELSTM(input_size=N, hidden_size=N - 1, key=ks[0]),
            ]
        ),
        "Stack(ELSTM,RTU,GRU)": lambda: Stack(
            [
                ELSTM(input_size=D, hidden_size=N, key=ks[1]),
                RTU(input_size=N, hidden_size=2, key=ks[2]),
                GRU(input_size=4, hidden_size=2, key=ks[3]),
            ]
        ),
        # Complex traces (LRU, linear RTU) below another layer: the cross-layer
        # blocks are built from the quarter-turned twin traces.
        "Stack(LRU,RTU(linear))": lambda: Stack(
            [
                LRU(input_size=D, hidden_size=N, key=ks[4]),
                RTU(input_size=D, hidden_size=2, nonlinear=False, key=ks[5]),
            ]
        ),
    }


def gradient_error(
    cell: AbstractCell,
    method: str,
    key: PRNGKeyArray,
    segments: int = 3,
    length: int = 6,
) -> float:
    """Max relative error of ``method``'s gradient against full BPTT.

    The loss is a nonlinear function of the outputs of the last of ``segments``
    segments, each started from the carry the previous one returned; a reset sits
    inside the second segment. The reference differentiates one ``"bptt"`` unroll
    over the whole history from ``init_carry()``.

    Returns:
        ``max_leaf max|g - g_ref| / max|g_ref|`` over the cell's parameter leaves.
    """
    kx, kr = jax.random.split(key)
    xs = jax.random.normal(kx, (segments, length, cell.input_size))
    reset_step = int(jax.random.randint(kr, (), 1, length))
    resets = jnp.zeros((segments, length), bool)
    if segments > 1:
        resets = resets.at[1, reset_step].set(True)

    def loss_of(ys):
        return jnp.sum(jnp.sin(ys) + ys**2)

    @eqx.filter_jit
    @eqx.filter_grad
    def grad_rtrl(c):
        carry = c.init_carry()
        for k in range(segments - 1):
            _, carry = c.unroll(carry, xs[k], resets[k], method=method)
        ys, _ = c.unroll(carry, xs[-1], resets[-1], method=method)
        return loss_of(ys)

    @eqx.filter_jit
    @eqx.filter_grad
    def grad_bptt(c):
        ys, _ = c.unroll(
            c.init_carry(),
            xs.reshape(-1, c.input_size),
            resets.reshape(-1),
            method="bptt",
        )
        return loss_of(ys[-length:])

    g = jax.tree.leaves(grad_rtrl(cell))
    g_ref = jax.tree.leaves(grad_bptt(cell))
    errs = [
        jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(b)), 1e-300)
        for a, b in zip(g, g_ref, strict=True)
    ]
    return float(max(errs))
