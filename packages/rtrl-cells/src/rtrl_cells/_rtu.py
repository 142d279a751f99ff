"""RTU: Recurrent Trace Units of Elelimy, White, Bowling & White (NeurIPS 2024)."""

from __future__ import annotations

import math
from typing import Literal, final

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._cell import AbstractElementwiseCell, check_sizes, default_dtype, recurrent
from ._lru import ring_init
from ._methods import GradientMethod

ACTIVATIONS = ("relu", "tanh")


def _act(name: str, a: Array) -> Array:
    return jax.nn.relu(a) if name == "relu" else jnp.tanh(a)


def _act_grad(name: str, a: Array) -> Array:
    # jax.nn.relu's derivative at exactly 0 is 0: match it.
    return (a > 0).astype(a.dtype) if name == "relu" else 1 - jnp.tanh(a) ** 2


GAMMA_EPS = 1e-8
"""Added to ``1 - r^2`` under the RTU's input-scale root (the released code's
1e-8), so ``gamma`` and its derivative stay finite as ``r -> 1``."""


@final
class RTU(AbstractElementwiseCell):
    r"""Recurrent trace unit: a real 2x2 rotation-and-scaling per unit.

    Recurrence (Elelimy et al. 2024; all products element-wise)::

        r = exp(-exp(nu_log)),  theta = exp(theta_log)
        g = r cos(theta),  phi = r sin(theta),  gamma = sqrt(1 - r^2 + eps)
        a1_t = g c1_{t-1} - phi c2_{t-1} + gamma (W1 x_t)
        a2_t = g c2_{t-1} + phi c1_{t-1} + gamma (W2 x_t)
        linear:      c = a,     y = f([c1; c2])
        non-linear:  c = f(a),  y = [c1; c2]

    ``gamma`` is tied to ``r``. Output width ``2N``; parameters ``2N + 2ND``.
    ``eps = 1e-8`` (``GAMMA_EPS``): the released code adds 1e-8 to
    ``sqrt(1 - r^2)``, outside the root, and divides ``gamma``'s derivative by
    that sum, which is the derivative of neither; inside the root the derivative
    below is exact and never divides by zero (``gamma >= 1e-4``).

    Sensitivity recursion (per unit, ``D_i = f'(a_i)``, 1 for the linear RTU)::

        E1_W1 <- D1 (g E1_W1 - phi E2_W1 + gamma x^T)
        E2_W1 <- D2 (g E2_W1 + phi E1_W1)            (W2: gamma x^T in row 2)
        E1_p  <- D1 (g E1_p - phi E2_p + dg c1 - dphi c2 + dgamma u1)
        E2_p  <- D2 (g E2_p + phi E1_p + dg c2 + dphi c1 + dgamma u2)
        p = nu_log:    dg = -exp(nu_log) g, dphi = -exp(nu_log) phi,
                       dgamma = exp(nu_log) r^2 / gamma
        p = theta_log: dg = -theta phi, dphi = theta g, dgamma = 0

    The factor ``theta`` in the ``theta_log`` derivatives is the chain rule through
    ``theta = exp(theta_log)``; the paper's released code drops it. For the linear
    RTU, ``E_W2 = (-E2_W1, E1_W1)`` exactly (the recurrence is a complex
    multiplication), so only ``W1``'s trace is kept. State shape ``(N, 2)``.
    """

    nu_log: Float[Array, " N"] = recurrent()
    theta_log: Float[Array, " N"] = recurrent()
    W1: Float[Array, "N D"] = recurrent()
    W2: Float[Array, "N D"] = recurrent()
    nonlinear: bool = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        *,
        input_size: int,
        hidden_size: int,
        nonlinear: bool = True,
        activation: Literal["relu", "tanh"] = "relu",
        key: PRNGKeyArray,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 6.28,
        dtype=None,
    ):
        check_sizes(input_size=input_size, hidden_size=hidden_size)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}: expected one of "
                f"{', '.join(ACTIVATIONS)}."
            )
        dtype = default_dtype(dtype)
        N, D = hidden_size, input_size
        ks = jax.random.split(key, 3)
        self.nu_log, self.theta_log = ring_init(
            ks[0], N, dtype, r_min, r_max, max_phase
        )
        self.W1 = jax.random.normal(ks[1], (N, D), dtype) / math.sqrt(D)
        self.W2 = jax.random.normal(ks[2], (N, D), dtype) / math.sqrt(D)
        self.nonlinear = bool(nonlinear)
        self.activation = activation

    @property
    def input_size(self) -> int:
        return self.W1.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.W1.shape[0]

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size

    @property
    def num_units(self) -> int:
        return self.hidden_size

    @property
    def block_size(self) -> int:
        return 2

    def _recompute(self, method: GradientMethod) -> bool:
        # The non-linear RTU's BPTT stores six values a step (two masks among
        # them); recomputing them is 14% faster at (N, D, T, B) = (256, 257, 50,
        # 32) and 6% at (512, 257, 100, 32) on a 2-core CPU. RTRL's two reverse
        # passes would recompute twice: 25% slower. Storing wins for the linear RTU.
        return self.nonlinear and not method.advances_traces

    def _coefficients(self):
        nu = jnp.exp(self.nu_log)
        r = jnp.exp(-nu)
        theta = jnp.exp(self.theta_log)
        # 1 - r^2 as -expm1(-2 nu): exact where r is near 1, where 1 - r**2
        # cancels to 0 in float32 long before nu does.
        gamma = jnp.sqrt(-jnp.expm1(-2 * nu) + GAMMA_EPS)
        return r, theta, r * jnp.cos(theta), r * jnp.sin(theta), gamma

    def _twins(self):
        # Linear: the state is complex-linear, d c / d W2 = i d c / d W1. Not so
        # once f acts on each component.
        return {} if self.nonlinear else {"W2": "W1"}

    def project(self, x_t):
        return jnp.stack([self.W1 @ x_t, self.W2 @ x_t], axis=-1)

    def _pre(self, s_tm1, u_t):
        _, _, g, phi, gamma = self._coefficients()
        c1, c2 = s_tm1[:, 0], s_tm1[:, 1]
        a1 = g * c1 - phi * c2 + gamma * u_t[:, 0]
        a2 = g * c2 + phi * c1 + gamma * u_t[:, 1]
        return a1, a2

    def core(self, s_tm1, u_t):
        a1, a2 = self._pre(s_tm1, u_t)
        if self.nonlinear:
            a1, a2 = _act(self.activation, a1), _act(self.activation, a2)
        return jnp.stack([a1, a2], axis=-1)

    def readout(self, s_t, x_t):
        y = jnp.concatenate([s_t[:, 0], s_t[:, 1]])
        return y if self.nonlinear else _act(self.activation, y)

    def trace_step(self, s_tm1, x_t, traces):
        r, theta, g, phi, gamma = self._coefficients()
        u = self.project(x_t)
        a1, a2 = self._pre(s_tm1, u)
        if self.nonlinear:
            d1, d2 = _act_grad(self.activation, a1), _act_grad(self.activation, a2)
            c_t = jnp.stack([_act(self.activation, a1), _act(self.activation, a2)], -1)
        else:
            d1 = d2 = jnp.ones_like(a1)
            c_t = jnp.stack([a1, a2], -1)
        c1, c2 = s_tm1[:, 0], s_tm1[:, 1]
        e_nu = jnp.exp(self.nu_log)
        new = {}

        def rotate(E, b1, b2, col):  # col: broadcast unit vectors to E's shape
            return jnp.stack(
                [
                    col(d1) * (col(g) * E[0] - col(phi) * E[1]) + col(d1) * b1,
                    col(d2) * (col(g) * E[1] + col(phi) * E[0]) + col(d2) * b2,
                ]
            )

        def vec(v):
            return v

        def mat(v):
            return v[:, None]

        gx = gamma[:, None] * x_t[None, :]
        zero = jnp.zeros_like(gx)
        new["W1"] = rotate(traces["W1"], gx, zero, mat)
        if traces["W2"] is not None:  # the linear RTU keeps W2's as a turn of W1's
            new["W2"] = rotate(traces["W2"], zero, gx, mat)
        for name, dg, dphi, dgamma in (
            ("nu_log", -e_nu * g, -e_nu * phi, e_nu * r**2 / gamma),
            ("theta_log", -theta * phi, theta * g, jnp.zeros_like(g)),
        ):
            b1 = dg * c1 - dphi * c2 + dgamma * u[:, 0]
            b2 = dg * c2 + dphi * c1 + dgamma * u[:, 1]
            new[name] = rotate(traces[name], b1, b2, vec)
        return c_t, new
