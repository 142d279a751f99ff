"""LRU: the linear recurrent unit of Orvieto et al. (ICML 2023), with Orvieto's
readout and with the RTU paper's (Elelimy et al. 2024)."""

from __future__ import annotations

import abc
import math
from typing import TYPE_CHECKING, final

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


class AbstractLRU(AbstractElementwiseCell):
    r"""The LRU's recurrence, shared by its readouts (Orvieto et al. 2023).

    Recurrence (complex ``h`` kept as ``[Re h, Im h]``)::

        lambda = exp(-exp(nu_log) + i exp(theta_log))
        h_t = lambda * h_{t-1} + gamma * (B x_t),   gamma = exp(gamma_log)

    with ``B = B_re + i B_im`` (``N x D``); ``gamma_log`` is learned and
    initialised to ``log sqrt(1 - |lambda|^2)``.

    Sensitivity recursion (complex, per unit; Elelimy et al. 2024, appendix)::

        e_lambda <- lambda e_lambda + h_{t-1}
        e_gamma  <- lambda e_gamma + B x_t
        E_B      <- lambda E_B + gamma x_t^T

    and the chain rule to ``nu_log``, ``theta_log``, ``gamma_log``. ``E_B`` is one
    complex trace: ``d h / d B_im = i d h / d B_re``, so only ``B_re``'s is kept
    (memory ``2ND + 6N`` per stream, not ``4ND``). The generic engine derives
    exactly these recursions by autodiff (the RTU paper's released baseline
    builds ``E_B`` with ``gamma_log`` instead of ``gamma``, and its real-time
    gradients are wrong in every parameter; nothing of it is copied). State
    shape ``(N, 2)``. Subclasses choose the readout.
    """

    nu_log: Float[Array, " N"] = recurrent()
    theta_log: Float[Array, " N"] = recurrent()
    gamma_log: Float[Array, " N"] = recurrent()
    B_re: Float[Array, "N D"] = recurrent()
    B_im: Float[Array, "N D"] = recurrent()

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
        self._init_readout(ks[3:], N, D, dtype)

    @abc.abstractmethod
    def _init_readout(self, keys, N: int, D: int, dtype) -> None:
        """Sets the readout's fields (three keys to draw them with)."""

    @property
    def input_size(self) -> int:
        return self.B_re.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.B_re.shape[0]

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


@final
class LRU(AbstractLRU):
    r"""Linear recurrent unit (Orvieto et al. 2023), with their readout.

    The recurrence of :class:`AbstractLRU`, read out as::

        y_t = Re(C h_t) + D * x_t

    with ``C = C_re + i C_im`` (``D x N``) and ``D`` a vector, so
    ``output_size == input_size``. The RTU paper's LRU baseline reads out
    differently: :class:`OnlineLRU`.
    """

    C_re: Float[Array, "D N"]
    C_im: Float[Array, "D N"]
    D: Float[Array, " D"]

    if TYPE_CHECKING:  # equinox inherits __init__; pyright would synthesize one
        __init__ = AbstractLRU.__init__

    def _init_readout(self, keys, N, D, dtype):
        self.C_re = jax.random.normal(keys[0], (D, N), dtype) / math.sqrt(N)
        self.C_im = jax.random.normal(keys[1], (D, N), dtype) / math.sqrt(N)
        self.D = jax.random.normal(keys[2], (D,), dtype)

    @property
    def output_size(self) -> int:
        return self.input_size

    def readout(self, s_t, x_t):
        return self.C_re @ s_t[:, 0] - self.C_im @ s_t[:, 1] + self.D * x_t


@final
class OnlineLRU(AbstractLRU):
    r"""The LRU of Elelimy et al. 2024's experiments (their online LRU baseline).

    The recurrence of :class:`AbstractLRU`, read out as in the RTU paper's
    released code::

        y_t = Re(C h_t)

    with a square ``C = C_re + i C_im`` (``N x N``) and no skip term, so
    ``output_size == hidden_size`` (Orvieto's :class:`LRU` reads out ``D``
    features and adds ``D * x_t``). Initialisation as the released code: ``C``
    entries ``N(0, 1 / N)``. The RTU-paper comparisons use this cell; the
    gradients are this library's exact RTRL, not the released code's.
    """

    C_re: Float[Array, "N N"]
    C_im: Float[Array, "N N"]

    if TYPE_CHECKING:  # equinox inherits __init__; pyright would synthesize one
        __init__ = AbstractLRU.__init__

    def _init_readout(self, keys, N, D, dtype):
        self.C_re = jax.random.normal(keys[0], (N, N), dtype) / math.sqrt(N)
        self.C_im = jax.random.normal(keys[1], (N, N), dtype) / math.sqrt(N)

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def readout(self, s_t, x_t):
        return self.C_re @ s_t[:, 0] - self.C_im @ s_t[:, 1]
