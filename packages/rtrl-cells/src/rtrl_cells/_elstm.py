"""eLSTM: the element-wise LSTM of Irie, Gopalakrishnan & Schmidhuber (ICLR 2024)."""

from __future__ import annotations

import math
from typing import cast, final

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._cell import AbstractElementwiseCell, check_sizes, default_dtype, recurrent
from ._methods import GradientMethod


@final
class ELSTM(AbstractElementwiseCell):
    r"""Element-wise LSTM with an output gate on the current cell state.

    Recurrence (Irie et al. 2024, eq. 1-5; all products element-wise)::

        f_t = sigmoid(F x_t + w_f * c_{t-1} + b_f)
        z_t = tanh(Z x_t + w_z * c_{t-1} + b_z)
        c_t = f_t * c_{t-1} + (1 - f_t) * z_t
        o_t = sigmoid(O x_t + W_o c_t + b_o)        # not recurrent: sees c_t
        y_t = o_t * c_t

    Sensitivity recursion (exact RTRL, per unit ``i``): with
    ``z_hat = (1 - f)(1 - z^2)``, ``f_hat = (c_{t-1} - z) f (1 - f)`` and the diagonal
    of the recurrent Jacobian ``a = f + w_f f_hat + w_z z_hat`` (the paper's first
    version omits ``w_z z_hat``; the maths keeps it)::

        S_Z <- a S_Z + z_hat x^T      S_F <- a S_F + f_hat x^T      (N x D)
        s_wz <- a s_wz + z_hat c_{t-1}   s_wf <- a s_wf + f_hat c_{t-1}
        s_bz <- a s_bz + z_hat           s_bf <- a s_bf + f_hat

    ``O``, ``W_o`` and ``b_o`` only shape the output and get ordinary gradients.
    Memory ``2ND + 4N`` per stream. State shape ``(N, 1)``.

    Init as the seed's code: ``F, Z, w_f, w_z, b_f, b_z ~ N(0, 0.1^2)``; the output
    gate is a linear layer on ``[x; c]`` with PyTorch's default init.
    """

    F: Float[Array, "N D"] = recurrent()
    Z: Float[Array, "N D"] = recurrent()
    w_f: Float[Array, " N"] = recurrent()
    w_z: Float[Array, " N"] = recurrent()
    b_f: Float[Array, " N"] = recurrent()
    b_z: Float[Array, " N"] = recurrent()
    O: Float[Array, "N D"]
    W_o: Float[Array, "N N"]
    b_o: Float[Array, " N"]

    def __init__(
        self,
        *,
        input_size: int,
        hidden_size: int,
        key: PRNGKeyArray,
        dtype=None,
    ):
        check_sizes(input_size=input_size, hidden_size=hidden_size)
        dtype = default_dtype(dtype)
        N, D = hidden_size, input_size
        ks = jax.random.split(key, 9)

        def normal(k, shape):
            return 0.1 * jax.random.normal(k, shape, dtype)

        bound = 1.0 / math.sqrt(D + N)

        def uniform(k, shape):
            return jax.random.uniform(k, shape, dtype, -bound, bound)

        self.F, self.Z = normal(ks[0], (N, D)), normal(ks[1], (N, D))
        self.w_f, self.w_z = normal(ks[2], (N,)), normal(ks[3], (N,))
        self.b_f, self.b_z = normal(ks[4], (N,)), normal(ks[5], (N,))
        self.O = uniform(ks[6], (N, D))
        self.W_o = uniform(ks[7], (N, N))
        self.b_o = uniform(ks[8], (N,))

    @property
    def input_size(self) -> int:
        return self.F.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.F.shape[0]

    @property
    def output_size(self) -> int:
        return self.hidden_size

    @property
    def num_units(self) -> int:
        return self.hidden_size

    @property
    def block_size(self) -> int:
        return 1

    def _recompute(self, method: GradientMethod) -> bool:
        # Recomputing a step beats storing its gates, on a 2-core CPU at (N, D, T,
        # B) = (256, 257, 50, 32) and (512, 257, 100, 32): chunked 10% faster,
        # BPTT 2% and 8%.
        return True

    def project(self, x_t):
        return jnp.stack([self.F @ x_t, self.Z @ x_t], axis=-1)

    def core(self, s_tm1, u_t):
        c = s_tm1[:, 0]
        f = jax.nn.sigmoid(u_t[:, 0] + self.w_f * c + self.b_f)
        z = jnp.tanh(u_t[:, 1] + self.w_z * c + self.b_z)
        return (f * c + (1 - f) * z)[:, None]

    def readout(self, s_t, x_t):
        c = s_t[:, 0]
        o = jax.nn.sigmoid(self.O @ x_t + self.W_o @ c + self.b_o)
        return o * c

    def trace_step(self, s_tm1, x_t, traces):
        # No field of an eLSTM has a twin: every trace is there.
        traces = cast(dict[str, Array], traces)
        c = s_tm1[:, 0]
        f = jax.nn.sigmoid(self.F @ x_t + self.w_f * c + self.b_f)
        z = jnp.tanh(self.Z @ x_t + self.w_z * c + self.b_z)
        c_t = f * c + (1 - f) * z
        z_hat = (1 - f) * (1 - z**2)
        f_hat = (c - z) * f * (1 - f)
        a = f + self.w_f * f_hat + self.w_z * z_hat
        new = {
            "Z": a[:, None] * traces["Z"][0] + jnp.outer(z_hat, x_t),
            "F": a[:, None] * traces["F"][0] + jnp.outer(f_hat, x_t),
            "w_z": a * traces["w_z"][0] + z_hat * c,
            "w_f": a * traces["w_f"][0] + f_hat * c,
            "b_z": a * traces["b_z"][0] + z_hat,
            "b_f": a * traces["b_f"][0] + f_hat,
        }
        return c_t[:, None], {k: v[None] for k, v in new.items()}
