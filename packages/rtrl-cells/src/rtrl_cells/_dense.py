"""Dense GRU and LSTM: the BPTT baselines, with exact dense RTRL for small N."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, final

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._cell import AbstractElementwiseCell, check_sizes, default_dtype, recurrent


def _uniform(key, shape, dtype, hidden_size):
    bound = 1.0 / math.sqrt(hidden_size)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


class AbstractDenseCell(AbstractElementwiseCell):
    """A fully recurrent cell: one block holding the whole state (``num_units=1``).

    Exact RTRL carries ``d s / d theta`` for the whole state: ``S * |theta|``
    numbers with ``S = block_size``, and each step costs ``O(S^2 |theta|)``, that
    is O(N^4). Meant for small N and for the complexity study. ``"chunked"`` is
    exact too (one reverse pass per state entry at the end of each segment).
    """

    if TYPE_CHECKING:  # declared by each subclass: gates stacked in G rows
        W: Float[Array, "G D"]
        U: Float[Array, "G N"]
        b: Float[Array, " G"]

    @property
    def num_units(self) -> int:
        return 1

    @property
    def output_size(self) -> int:
        return self.hidden_size

    @property
    def input_size(self) -> int:
        return self.W.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.U.shape[1]

    def project(self, x_t):
        return (self.W @ x_t + self.b)[None, :]


@final
class GRU(AbstractDenseCell):
    r"""Gated recurrent unit (Cho et al. 2014; PyTorch's variant).

    Recurrence, with gates stacked as ``[r; z; n]`` in ``W`` (3N x D), ``U``
    (3N x N), ``b`` and ``b_hn``::

        r = sigmoid(W_r x + b_r + U_r h)
        z = sigmoid(W_z x + b_z + U_z h)
        n = tanh(W_n x + b_n + r * (U_n h + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}
        y_t = h_t

    Sensitivity recursion (dense RTRL, Williams & Zipser 1989):
    ``E_t = (d h_t / d h_{t-1}) E_{t-1} + d h_t / d theta``, derived by the engine.
    State shape ``(1, N)``.
    """

    W: Float[Array, "3N D"] = recurrent()
    U: Float[Array, "3N N"] = recurrent()
    b: Float[Array, " 3N"] = recurrent()
    b_hn: Float[Array, " N"] = recurrent()

    def __init__(
        self, *, input_size: int, hidden_size: int, key: PRNGKeyArray, dtype=None
    ):
        check_sizes(input_size=input_size, hidden_size=hidden_size)
        dtype = default_dtype(dtype)
        N, D = hidden_size, input_size
        ks = jax.random.split(key, 4)
        self.W = _uniform(ks[0], (3 * N, D), dtype, N)
        self.U = _uniform(ks[1], (3 * N, N), dtype, N)
        self.b = _uniform(ks[2], (3 * N,), dtype, N)
        self.b_hn = _uniform(ks[3], (N,), dtype, N)

    @property
    def block_size(self) -> int:
        return self.hidden_size

    def core(self, s_tm1, u_t):
        N = self.hidden_size
        h = s_tm1[0]
        u = u_t[0]
        hh = self.U @ h
        r = jax.nn.sigmoid(u[:N] + hh[:N])
        z = jax.nn.sigmoid(u[N : 2 * N] + hh[N : 2 * N])
        n = jnp.tanh(u[2 * N :] + r * (hh[2 * N :] + self.b_hn))
        return ((1 - z) * n + z * h)[None, :]

    def readout(self, s_t, x_t):
        return s_t[0]


@final
class LSTM(AbstractDenseCell):
    r"""Long short-term memory (Hochreiter & Schmidhuber 1997, with forget gate).

    Recurrence, gates stacked as ``[i; f; g; o]`` in ``W`` (4N x D), ``U``
    (4N x N), ``b``::

        i, f, o = sigmoid(.), g = tanh(.)   of  W x + U h_{t-1} + b
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)
        y_t = h_t

    Sensitivity recursion: dense RTRL over the joint state ``[h; c]`` (2N), derived
    by the engine. State shape ``(1, 2N)``.
    """

    W: Float[Array, "4N D"] = recurrent()
    U: Float[Array, "4N N"] = recurrent()
    b: Float[Array, " 4N"] = recurrent()

    def __init__(
        self, *, input_size: int, hidden_size: int, key: PRNGKeyArray, dtype=None
    ):
        check_sizes(input_size=input_size, hidden_size=hidden_size)
        dtype = default_dtype(dtype)
        N, D = hidden_size, input_size
        ks = jax.random.split(key, 3)
        self.W = _uniform(ks[0], (4 * N, D), dtype, N)
        self.U = _uniform(ks[1], (4 * N, N), dtype, N)
        self.b = _uniform(ks[2], (4 * N,), dtype, N)

    @property
    def block_size(self) -> int:
        return 2 * self.hidden_size

    def core(self, s_tm1, u_t):
        N = self.hidden_size
        h, c = s_tm1[0, :N], s_tm1[0, N:]
        gates = u_t[0] + self.U @ h
        i = jax.nn.sigmoid(gates[:N])
        f = jax.nn.sigmoid(gates[N : 2 * N])
        g = jnp.tanh(gates[2 * N : 3 * N])
        o = jax.nn.sigmoid(gates[3 * N :])
        c = f * c + i * g
        return jnp.concatenate([o * jnp.tanh(c), c])[None, :]

    def readout(self, s_t, x_t):
        return s_t[0, : self.hidden_size]
