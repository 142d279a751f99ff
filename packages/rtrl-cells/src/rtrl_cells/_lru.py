"""LRU: the linear recurrent unit of Orvieto et al. (ICML 2023), as in Elelimy et al."""

from __future__ import annotations

import math
from typing import final

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._cell import AbstractElementwiseCell, check_sizes, default_dtype, recurrent


def ring_init(
    key: PRNGKeyArray,
    n: int,
    dtype,
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 6.28,
) -> tuple[Array, Array]:
    """``(nu_log, theta_log)`` with eigenvalues uniform on a ring (Orvieto et al.).

    ``u1, u2 ~ U(0, 1)``, ``nu = -0.5 log(u1 (r_max^2 - r_min^2) + r_min^2)``,
    ``theta = max_phase * u2``. Defaults are the RTU code's.
    """
    if not 0.0 <= r_min < r_max <= 1.0:
        raise ValueError(f"need 0 <= r_min < r_max <= 1, got {r_min}, {r_max}.")
    k1, k2 = jax.random.split(key)
    tiny = 1e-4  # keeps |lambda| < 1 and theta > 0 so that the logs are finite
    u1 = jax.random.uniform(k1, (n,), dtype, tiny, 1.0 - tiny)
    u2 = jax.random.uniform(k2, (n,), dtype, tiny, 1.0)
    nu = -0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2)
    return jnp.log(nu), jnp.log(max_phase * u2)


@final
class LRU(AbstractElementwiseCell):
    r"""Linear recurrent unit with a complex diagonal recurrence.

    Recurrence (Orvieto et al. 2023; complex ``h`` kept as ``[Re h, Im h]``)::

        lambda = exp(-exp(nu_log) + i exp(theta_log))
        h_t = lambda * h_{t-1} + gamma * (B x_t),   gamma = exp(gamma_log)
        y_t = Re(C h_t) + D * x_t

    with ``B = B_re + i B_im`` (``N x D``), ``C = C_re + i C_im`` (``D x N``) and
    ``D`` a vector, so ``output_size == input_size``. ``gamma_log`` is learned and
    initialised to ``log sqrt(1 - |lambda|^2)``.

    Sensitivity recursion (complex, per unit; Elelimy et al. 2024, appendix)::

        e_lambda <- lambda e_lambda + h_{t-1}
        e_gamma  <- lambda e_gamma + B x_t
        E_B      <- lambda E_B + gamma x_t^T

    and the chain rule to ``nu_log``, ``theta_log``, ``gamma_log``. ``E_B`` is one
    complex trace: ``d h / d B_im = i d h / d B_re``, so only ``B_re``'s is kept
    (memory ``2ND + 6N`` per stream, not ``4ND``). This cell uses
    the generic engine, which derives exactly these recursions by autodiff (the
    RTU paper's released baseline builds ``E_B`` with ``gamma_log`` instead of
    ``gamma``; that is a bug this does not copy). State shape ``(N, 2)``.
    """

    nu_log: Float[Array, " N"] = recurrent()
    theta_log: Float[Array, " N"] = recurrent()
    gamma_log: Float[Array, " N"] = recurrent()
    B_re: Float[Array, "N D"] = recurrent()
    B_im: Float[Array, "N D"] = recurrent()
    C_re: Float[Array, "D N"]
    C_im: Float[Array, "D N"]
    D: Float[Array, " D"]

    def __init__(
        self,
        *,
        input_size: int,
        hidden_size: int,
        key: PRNGKeyArray,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 6.28,
        dtype=None,
    ):
        check_sizes(input_size=input_size, hidden_size=hidden_size)
        dtype = default_dtype(dtype)
        N, D = hidden_size, input_size
        ks = jax.random.split(key, 6)
        self.nu_log, self.theta_log = ring_init(
            ks[0], N, dtype, r_min, r_max, max_phase
        )
        mod = jnp.exp(-jnp.exp(self.nu_log))
        self.gamma_log = jnp.log(jnp.sqrt(1 - mod**2))
        self.B_re = jax.random.normal(ks[1], (N, D), dtype) / math.sqrt(2 * D)
        self.B_im = jax.random.normal(ks[2], (N, D), dtype) / math.sqrt(2 * D)
        self.C_re = jax.random.normal(ks[3], (D, N), dtype) / math.sqrt(N)
        self.C_im = jax.random.normal(ks[4], (D, N), dtype) / math.sqrt(N)
        self.D = jax.random.normal(ks[5], (D,), dtype)

    @property
    def input_size(self) -> int:
        return self.B_re.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.B_re.shape[0]

    @property
    def output_size(self) -> int:
        return self.input_size

    @property
    def num_units(self) -> int:
        return self.hidden_size

    @property
    def block_size(self) -> int:
        return 2

    def _twins(self):
        return {"B_im": "B_re"}

    def project(self, x_t):
        return jnp.stack([self.B_re @ x_t, self.B_im @ x_t], axis=-1)

    def core(self, s_tm1, u_t):
        mod = jnp.exp(-jnp.exp(self.nu_log))
        theta = jnp.exp(self.theta_log)
        lam_re, lam_im = mod * jnp.cos(theta), mod * jnp.sin(theta)
        gamma = jnp.exp(self.gamma_log)
        h_re, h_im = s_tm1[:, 0], s_tm1[:, 1]
        new_re = lam_re * h_re - lam_im * h_im + gamma * u_t[:, 0]
        new_im = lam_re * h_im + lam_im * h_re + gamma * u_t[:, 1]
        return jnp.stack([new_re, new_im], axis=-1)

    def readout(self, s_t, x_t):
        return self.C_re @ s_t[:, 0] - self.C_im @ s_t[:, 1] + self.D * x_t
