"""A second cell written from the README alone joins the suite and the registry.

A damped oscillator: two components per unit (a rotation by ``omega`` scaled by
``r``), a tanh on each, and a learned linear readout that mixes the units (an
output-only field). No hand-written fast path: the engine derives it.
"""

from typing import final

import jax
import jax.numpy as jnp
import pytest
from jaxtyping import Array, Float, PRNGKeyArray

import rtrl_cells as rc


@final
class Oscillator(rc.AbstractElementwiseCell):
    """s_t = tanh(r R(omega) s_{t-1} + [W1 x; W2 x]), y_t = C vec(s_t)."""

    rho: Float[Array, " N"] = rc.recurrent()
    omega: Float[Array, " N"] = rc.recurrent()
    W1: Float[Array, "N D"] = rc.recurrent()
    W2: Float[Array, "N D"] = rc.recurrent()
    C: Float[Array, "O 2N"]
    out: int

    def __init__(
        self,
        *,
        input_size: int,
        hidden_size: int,
        key: PRNGKeyArray,
        dtype=None,
        output_size: int = 2,
    ):
        dtype = jnp.zeros(()).dtype if dtype is None else dtype
        ks = jax.random.split(key, 5)
        N, D = hidden_size, input_size
        self.rho = jax.random.normal(ks[0], (N,), dtype)
        self.omega = jax.random.uniform(ks[1], (N,), dtype, 0.0, 3.0)
        self.W1 = jax.random.normal(ks[2], (N, D), dtype) / D**0.5
        self.W2 = jax.random.normal(ks[3], (N, D), dtype) / D**0.5
        self.C = jax.random.normal(ks[4], (output_size, 2 * N), dtype) / N**0.5
        self.out = output_size

    @property
    def input_size(self) -> int:
        return self.W1.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.W1.shape[0]

    @property
    def output_size(self) -> int:
        return self.out

    @property
    def num_units(self) -> int:
        return self.hidden_size

    @property
    def block_size(self) -> int:
        return 2

    def project(self, x_t):
        return jnp.stack([self.W1 @ x_t, self.W2 @ x_t], axis=-1)

    def core(self, s_tm1, u_t):
        r = jax.nn.sigmoid(self.rho)
        c, s = r * jnp.cos(self.omega), r * jnp.sin(self.omega)
        a1 = c * s_tm1[:, 0] - s * s_tm1[:, 1] + u_t[:, 0]
        a2 = s * s_tm1[:, 0] + c * s_tm1[:, 1] + u_t[:, 1]
        return jnp.tanh(jnp.stack([a1, a2], axis=-1))

    def readout(self, s_t, x_t):
        return self.C @ s_t.reshape(-1)


class TestOscillator(rc.testing.CellTests):
    @pytest.fixture
    def cell(self):
        return Oscillator(input_size=3, hidden_size=4, key=jax.random.PRNGKey(2))


def test_registered_with_options():
    kind = rc.register_cell(
        "oscillator", Oscillator, examples={"wide": {"output_size": 5}}
    )
    try:
        assert kind.options == ("output_size",)
        cell = rc.CELLS["oscillator"].make(
            input_size=3, hidden_size=4, key=jax.random.PRNGKey(0), output_size=3
        )
        assert cell.output_size == 3
        assert rc.cell_kind_of(cell) is kind
        made = rc.example_cells(jax.random.PRNGKey(0))["Oscillator(wide)"]()
        assert made.output_size == 5
        with pytest.raises(ValueError, match="takes no option 'size'") as e:
            kind.make(input_size=3, hidden_size=4, key=jax.random.PRNGKey(0), size=2)
        assert "\n" not in str(e.value)
    finally:
        rc.unregister_cell("oscillator")


def test_in_a_stack():
    key = jax.random.PRNGKey(3)
    stack = rc.Stack(
        [
            Oscillator(input_size=3, hidden_size=3, key=key, output_size=4),
            rc.ELSTM(input_size=4, hidden_size=2, key=key),
        ]
    )
    rc.check_cell(stack)
