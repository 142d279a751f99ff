"""A broken cell contract is refused with one line naming the field and property.

At construction: a legacy or misspelt declaration, a recurrent field whose leading
axis is not the unit axis (a scalar shared by all units among them), a static or
non-array recurrent field. By ``check_cell``, numerically: a field that drives
the state without being declared, a core whose units mix, a parameter a unit
reads another unit's slice of, a wrong quarter-turn twin, a wrong hand-written
fast path, a wrong shape. Each case also shows the gradient that the unchecked
contract would have given silently, so the refusal is not about nothing.
"""

from typing import ClassVar

import jax
import jax.numpy as jnp
import pytest
from jaxtyping import Array

import rtrl_cells as rc

KEY = jax.random.PRNGKey(0)


class _Base(rc.AbstractElementwiseCell):
    """h_t = relu(W x_t + u * h_{t-1} + b), nothing declared; D = 3, N = 4."""

    W: Array
    u: Array
    b: Array

    def __init__(self, *, input_size=3, hidden_size=4, key=KEY, dtype=None):
        k1, k2 = jax.random.split(key)
        self.W = jax.random.normal(k1, (hidden_size, input_size)) / 2
        self.u = jax.random.uniform(k2, (hidden_size,), minval=0.2, maxval=0.9)
        self.b = jnp.full((hidden_size,), 0.3)

    @property
    def input_size(self):
        return self.W.shape[1]

    @property
    def output_size(self):
        return self.num_units

    @property
    def num_units(self):
        return self.b.shape[0]

    @property
    def block_size(self):
        return 1

    def project(self, x_t):
        return (self.W @ x_t)[:, None]

    def core(self, s_tm1, u_t):
        return jnp.tanh(u_t + self.u[:, None] * s_tm1 + self.b[:, None])

    def readout(self, s_t, x_t):
        return s_t[:, 0]


class Good(_Base):
    W: Array = rc.recurrent()
    u: Array = rc.recurrent()
    b: Array = rc.recurrent()


def _refused(excinfo, *parts):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for part in parts:
        assert part in msg, msg
    return msg


def _silent_error(cell) -> float:
    """What the chunked gradient's error against full BPTT is, unchecked."""
    return rc.gradient_error(cell, "chunked", jax.random.PRNGKey(1))


def test_the_good_cell_passes():
    rc.check_cell(Good())
    assert rc.recurrent_fields(Good) == ("W", "u", "b")


# --- at construction ---------------------------------------------------------


def test_legacy_name_list_is_refused():
    class Legacy(_Base):
        rec_fields: ClassVar[tuple[str, ...]] = ("W", "uu", "b")  # misspelt

    with pytest.raises(TypeError) as e:
        Legacy()
    _refused(e, "Legacy.rec_fields is no longer read", "rc.recurrent()")


def test_misspelt_twin_is_refused():
    class BadTwin(Good):
        def _twins(self):
            return {"W": "Wre"}

    with pytest.raises(TypeError) as e:
        BadTwin()
    _refused(e, "BadTwin._twins() names 'Wre'", "not a recurrent field")


def test_leading_axis_not_the_unit_axis_is_refused():
    class Transposed(Good):
        def __init__(self):
            super().__init__()
            self.W = self.W.T  # (D, N): the unit axis second

        def project(self, x_t):
            return (self.W.T @ x_t)[:, None]

    with pytest.raises(TypeError) as e:
        Transposed()
    _refused(e, "Transposed.W is declared recurrent with shape (3, 4)", "num_units=4")


def test_scalar_shared_by_all_units_is_refused():
    class Shared(Good):
        alpha: Array = rc.recurrent()

        def __init__(self):
            super().__init__()
            self.alpha = jnp.asarray(0.5)

        def core(self, s_tm1, u_t):
            return jnp.tanh(u_t + self.alpha * s_tm1 + self.b[:, None])

    with pytest.raises(TypeError) as e:
        Shared()
    _refused(e, "Shared.alpha is declared recurrent with shape ()", "(4, ...)")


def test_static_or_non_array_recurrent_field_is_refused():
    with pytest.raises(TypeError, match="takes no static"):
        rc.recurrent(static=True)

    class Empty(Good):
        extra: object = rc.recurrent()

        def __init__(self):
            super().__init__()
            self.extra = None

    with pytest.raises(TypeError) as e:
        Empty()
    _refused(e, "Empty.extra is declared recurrent but holds None")


# --- by check_cell -------------------------------------------------------------


def test_missing_declaration_is_found():
    class Forgot(_Base):
        W: Array = rc.recurrent()
        b: Array = rc.recurrent()  # u drives the recurrence too

    assert _silent_error(Forgot()) > 1e-2
    with pytest.raises(rc.CellContractError) as e:
        rc.check_cell(Forgot())
    _refused(e, "check_cell(Forgot) failed [declared]: parameter 'u'", "rc.recurrent()")
    assert (e.value.parameter, e.value.property) == ("u", "declared")


def test_shared_scalar_left_undeclared_is_found():
    class Shared(Good):
        alpha: Array

        def __init__(self):
            super().__init__()
            self.alpha = jnp.asarray(0.5)

        def core(self, s_tm1, u_t):
            return jnp.tanh(u_t + self.alpha * s_tm1 + self.b[:, None])

    with pytest.raises(rc.CellContractError) as e:
        rc.check_cell(Shared())
    _refused(e, "[declared]: parameter 'alpha'")


def test_unit_mixing_core_is_found():
    class Mixing(Good):
        U: Array = rc.recurrent()  # (N, N): a dense recurrent matrix

        def __init__(self):
            super().__init__()
            self.U = jax.random.normal(jax.random.PRNGKey(5), (4, 4)) / 2

        def core(self, s_tm1, u_t):
            return jnp.tanh(u_t + self.U @ s_tm1 + self.b[:, None])

    assert _silent_error(Mixing()) > 1e-2
    with pytest.raises(rc.CellContractError) as e:
        rc.check_cell(Mixing())
    _refused(e, "[element-wise]: parameter 'U': units mix", "through 'U'")


def test_parameter_read_across_units_is_found():
    class Rolled(Good):
        def core(self, s_tm1, u_t):  # unit i reads u[i - 1]
            return jnp.tanh(
                u_t + jnp.roll(self.u, 1)[:, None] * s_tm1 + self.b[:, None]
            )

    assert _silent_error(Rolled()) > 1e-2
    with pytest.raises(rc.CellContractError) as e:
        rc.check_cell(Rolled())
    _refused(e, "[element-wise]: parameter 'u': unit i's new state reads u[j]")


def test_square_matrix_with_the_wrong_unit_axis_is_found():
    # D = N, so no shape can tell: the unit reads a column, not its row.
    class Columns(Good):
        def __init__(self):
            super().__init__(input_size=4)

        def project(self, x_t):
            return (self.W.T @ x_t)[:, None]

    assert _silent_error(Columns()) > 1e-2
    with pytest.raises(rc.CellContractError) as e:
        rc.check_cell(Columns())
    _refused(e, "[element-wise]: parameter 'W'")


def test_wrong_fast_path_is_found():
    class Fast(Good):
        def trace_step(self, s_tm1, x_t, traces):
            h = s_tm1[:, 0]
            a = self.W @ x_t + self.u * h + self.b
            d = 1 - jnp.tanh(a) ** 2
            new = {
                "W": d[:, None] * (self.u[:, None] * traces["W"][0] + x_t[None, :]),
                "u": d * (self.u * traces["u"][0] + h),
                "b": d * (self.u * traces["b"][0]),  # the "+ 1" forgotten
            }
            return jnp.tanh(a)[:, None], {k: v[None] for k, v in new.items()}

    with pytest.raises(rc.CellContractError) as e:
        rc.check_cell(Fast())
    _refused(e, "[fast path]: parameter 'b': the hand-written trace_step's trace")

    class Missing(Good):
        def trace_step(self, s_tm1, x_t, traces):
            return self.core(s_tm1, self.project(x_t)), {}

    with pytest.raises(rc.CellContractError) as e:
        rc.check_cell(Missing())
    _refused(e, "[fast path]", "Missing.trace_step returned nothing for 'W'")


def test_wrong_twin_is_found():
    # A quarter-turn twin holds only for a complex-linear recurrence.
    class Rot(rc.AbstractElementwiseCell):
        W1: Array = rc.recurrent()
        W2: Array = rc.recurrent()
        c: Array = rc.recurrent()

        def __init__(self, nonlinear: bool):
            self.W1 = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
            self.W2 = jax.random.normal(jax.random.PRNGKey(2), (4, 3))
            self.c = jnp.full((4,), 0.6)

        input_size = property(lambda self: 3)
        output_size = property(lambda self: 8)
        num_units = property(lambda self: 4)
        block_size = property(lambda self: 2)

        def project(self, x_t):
            return jnp.stack([self.W1 @ x_t, self.W2 @ x_t], -1)

        def core(self, s_tm1, u_t):
            h1 = self.c * s_tm1[:, 0] - 0.3 * s_tm1[:, 1] + u_t[:, 0]
            h2 = self.c * s_tm1[:, 1] + 0.3 * s_tm1[:, 0] + u_t[:, 1]
            return jnp.tanh(jnp.stack([h1, h2], -1))

        def readout(self, s_t, x_t):
            return s_t.reshape(-1)

        def _twins(self):
            return {"W2": "W1"}

    with pytest.raises(rc.CellContractError) as e:
        rc.check_cell(Rot(True))
    _refused(e, "[traces]: parameter 'W2': its trace is declared a quarter turn")


def test_wrong_state_shape_is_found():
    class Flat(Good):
        def core(self, s_tm1, u_t):
            return super().core(s_tm1, u_t)[:, 0]

    with pytest.raises(rc.CellContractError) as e:
        rc.check_cell(Flat())
    _refused(e, "[shapes]", "core returned states of shapes [(4,)]")


def test_too_large_to_check():
    cell = rc.ELSTM(input_size=200, hidden_size=256, key=KEY)
    with pytest.raises(ValueError, match="check a small instance") as e:
        rc.check_cell(cell)
    _refused(e)
