"""Supervised and prediction learners for the seeds' diagnostics.

* :class:`SequenceLearner`: supervised sequence learning (the copy task): a cell,
  a linear readout, a per-output loss (cross-entropy per bit or squared error),
  Adam, one update per segment of ``segment_length`` steps (1: every step). The
  carry (state and RTRL traces) crosses segments, so with RTRL the gradient of
  a segment's loss reaches the whole past.
* :class:`TDPredictor`: TD(lambda) prediction with online RTRL (trace
  conditioning): predicts the discounted sum of a cumulant, one update per step.

Both are pure functions over an explicit :class:`AgentState` and share the
agents' pieces (cells from :class:`CoreConfig`, the finite-update guard). They
take data as arrays (:class:`SequenceBatch`, :class:`CumulantBatch`): no
environment package is imported.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, PRNGKeyArray

import rtrl_cells as rc

from ._config import SequenceLearnerConfig, TDPredictorConfig
from ._core import AgentState, apply_if_finite, batched_initial_carry
from ._networks import _float_dtype, make_core


class PredictionNet(eqx.Module):
    """A cell (or none) and a linear readout; one stream, unbatched.

    ``core=None`` is the memoryless baseline: the readout sees the input only.
    """

    core: rc.AbstractCell | None
    readout: eqx.nn.Linear
    method: str = eqx.field(static=True)

    def __init__(
        self,
        config: Any,
        input_size: int,
        output_size: int,
        *,
        key: PRNGKeyArray,
        cell: rc.AbstractCell | None = None,
    ):
        """Builds the network.

        Args:
            config: a :class:`CoreConfig`.
            input_size: features per step.
            output_size: outputs per step.
            key: PRNG key for the parameters.
            cell: an rtrl-cells cell to use instead of building the one
                ``config`` names; it must be of that kind and size.
        """
        k_core, k_out = jax.random.split(key)
        self.core = make_core(config, input_size, key=k_core, cell=cell)
        feat = input_size if self.core is None else self.core.output_size
        self.readout = eqx.nn.Linear(feat, output_size, key=k_out)
        self.method = config.method

    def initial_carry(self) -> Any:
        """The carry of one stream at the start (a dummy scalar without a core)."""
        if self.core is None:
            return jnp.zeros((), _float_dtype())
        return self.core.init_carry()

    def unroll(
        self,
        carry: Any,
        xs: Float[Array, "T I"],
        resets: Bool[Array, " T"],
        method: str | None = None,
    ) -> tuple[Float[Array, "T O"], Any]:
        """``T`` steps from ``carry``: ``(outputs (T, O), carry_T)``.

        ``method`` is the cell's unroll method; default: ``self.method``
        (``"rtrl"`` is chunked, ``"rtrl-online"`` online, ``"tbptt"`` bptt within
        the call: aliases in ``rtrl_cells.METHODS``).
        """
        xs = jnp.asarray(xs, _float_dtype())
        if self.core is None:
            hs, carry_T = xs, carry
        else:
            method = rc.method(self.method) if method is None else method
            hs, carry_T = self.core.unroll(carry, xs, resets, method=method)
        return jax.vmap(self.readout)(hs), carry_T

    def step(self, carry: Any, x_t: Array, reset_t: Array) -> tuple[Array, Any]:
        """One step with online RTRL (TBPTT cores: one-step gradient)."""
        ys, carry = self.unroll(
            carry,
            jnp.asarray(x_t)[None],
            jnp.asarray(reset_t)[None],
            method=rc.method(self.method).step_method,
        )
        return ys[0], carry


class SequenceBatch(NamedTuple):
    """A segment of ``T`` steps of ``B`` streams, batch-first.

    Attributes:
        inputs: ``(B, T, I)``.
        targets: ``(B, T, O)``: bits in ``{0, 1}`` for ``loss="bce"``.
        mask: ``(B, T)``: 1 where the step's outputs are scored.
        resets: ``(B, T)`` bool: the step starts a new sequence (the cell resets).
    """

    inputs: Array
    targets: Array
    mask: Array
    resets: Array


class CumulantBatch(NamedTuple):
    """One step (or, for :func:`run_stream`, ``T`` steps) of ``B`` streams.

    Attributes:
        inputs: ``(B, I)`` (``(B, T, I)``).
        cumulants: ``(B,)`` (``(B, T)``): the cumulant that arrived with the input.
        resets: ``(B,)`` (``(B, T)``) bool: the input starts a new episode.
    """

    inputs: Array
    cumulants: Array
    resets: Array


class TDState(NamedTuple):
    """The TD learner's per-stream state (``AgentState.extra``).

    Attributes:
        carry: the cell's carry (state and RTRL traces).
        trace: the eligibility trace ``z`` over all parameters.
        value: the previous prediction ``v_{t-1}``.
        started: false until a stream has a previous prediction (and after a
            reset): no TD error is formed across an episode boundary.
    """

    carry: Any
    trace: Any
    value: Array
    started: Array


def _optimizer(name: str, lr: float, eps: float, clip: float | None):
    if name == "adam":
        opt = optax.inject_hyperparams(optax.adam)(learning_rate=lr, eps=eps)
    else:
        opt = optax.inject_hyperparams(optax.sgd)(learning_rate=lr)
    if clip is None:
        return opt
    return optax.chain(optax.clip_by_global_norm(clip), opt)


class SequenceLearner:
    """Supervised sequence learning on an rtrl-cells core (the copy task).

    ``update`` takes one segment: it runs the cell from the carried state and
    traces with the core's method, takes the gradient of the segment's mean loss
    and applies one Adam step. With ``"rtrl"``/``"rtrl-online"`` that gradient
    is BPTT inside the segment plus ``lambda_0 . E_0``: untruncated (tested equal
    to BPTT over the whole sequence); with ``"tbptt"`` it stops at the segment
    start. Parameters change between segments, as in online RTRL.

    Args:
        config: the learner's configuration.
        input_size: features per step.
        output_size: outputs per step.
        num_streams: ``B``, the streams learned from in parallel.
        cell: optionally, any rtrl-cells cell to use as the core.
    """

    def __init__(
        self,
        config: SequenceLearnerConfig,
        input_size: int,
        output_size: int,
        num_streams: int = 1,
        *,
        cell: rc.AbstractCell | None = None,
    ):
        if not isinstance(config, SequenceLearnerConfig):
            raise ValueError(
                f"SequenceLearner needs a SequenceLearnerConfig, got "
                f"{type(config).__name__}."
            )
        for name, v in (
            ("input_size", input_size),
            ("output_size", output_size),
            ("num_streams", num_streams),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SequenceLearner {name} must be >= 1, got {v!r}.")
        self.config = config
        self.input_size, self.output_size = input_size, output_size
        self.num_streams = num_streams
        self._cell = cell
        eqx.filter_eval_shape(self._make_net, jax.random.PRNGKey(0))
        self.optimizer = _optimizer(
            "adam", config.learning_rate, config.adam_eps, config.max_grad_norm
        )

    def _make_net(self, key) -> PredictionNet:
        return PredictionNet(
            self.config.core,
            self.input_size,
            self.output_size,
            key=key,
            cell=self._cell,
        )

    def init(self, key: Array) -> AgentState:
        """Fresh parameters, Adam state and carries (``extra``)."""
        net = self._make_net(key)
        opt_state = self.optimizer.init(eqx.filter(net, eqx.is_inexact_array))
        carry = batched_initial_carry(net, self.num_streams)
        return AgentState(net, opt_state, jnp.zeros((), jnp.int32), carry)

    def _loss(self, net: PredictionNet, carry, batch: SequenceBatch):
        ys, carry_T = jax.vmap(net.unroll)(carry, batch.inputs, batch.resets)
        t = jnp.asarray(batch.targets, ys.dtype)
        m = jnp.asarray(batch.mask, ys.dtype)[..., None]
        if self.config.loss == "bce":
            per = optax.sigmoid_binary_cross_entropy(ys, t)
            correct = (ys > 0) == (t > 0.5)
        else:
            per = 0.5 * (ys - t) ** 2
            correct = jnp.abs(ys - t) < 0.5
        n = jnp.sum(m) * ys.shape[-1]
        safe = jnp.maximum(n, 1.0)
        loss = jnp.sum(m * per) / safe
        acc = jnp.sum(m * correct) / safe
        return loss, (carry_T, {"loss": loss, "bit_accuracy": acc, "scored": n})

    def gradients(
        self, state: AgentState, batch: SequenceBatch
    ) -> tuple[Array, Any, Any, dict[str, Array]]:
        """The segment's ``(loss, grads, carry_T, metrics)``; nothing is applied."""
        (loss, (carry_T, metrics)), grads = eqx.filter_value_and_grad(
            self._loss, has_aux=True
        )(state.params, state.extra, batch)
        return loss, grads, carry_T, metrics

    def update(
        self, state: AgentState, batch: SequenceBatch
    ) -> tuple[AgentState, dict[str, Array]]:
        """One Adam step on one segment; the carries move to its end."""
        loss, grads, carry_T, metrics = self.gradients(state, batch)
        new, guard = apply_if_finite(state, grads, self.optimizer, loss, carry_T)
        return new, {**metrics, **guard}


class TDPredictor:
    """TD(lambda) prediction with online RTRL: one update per step.

    Per stream, at step ``t`` with input ``x_t`` and cumulant ``c_t``:
    ``v_t = w . h_t`` (with ``h_t`` from the cell, whose gradient w.r.t. its
    parameters comes from online RTRL, ``dv/dh . E_t``);
    ``delta = c_t + gamma v_t - v_{t-1}`` (none across a reset or at the start);
    the step descends ``-delta z_{t-1}`` (SGD or Adam; streams averaged); then
    ``z_t = gamma lambda z_{t-1} + grad v_t`` (cleared at resets). The target is
    ``G_t = sum_k gamma^(k-1) c_(t+k)``.

    Args:
        config: the learner's configuration.
        input_size: features per step.
        num_streams: ``B``.
        cell: optionally, any rtrl-cells cell to use as the core.
    """

    def __init__(
        self,
        config: TDPredictorConfig,
        input_size: int,
        num_streams: int = 1,
        *,
        cell: rc.AbstractCell | None = None,
    ):
        if not isinstance(config, TDPredictorConfig):
            raise ValueError(
                f"TDPredictor needs a TDPredictorConfig, got {type(config).__name__}."
            )
        for name, v in (("input_size", input_size), ("num_streams", num_streams)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"TDPredictor {name} must be >= 1, got {v!r}.")
        self.config = config
        self.input_size = input_size
        self.num_streams = num_streams
        self._cell = cell
        eqx.filter_eval_shape(self._make_net, jax.random.PRNGKey(0))
        self.optimizer = _optimizer(
            config.optimizer, config.learning_rate, config.adam_eps, None
        )

    def _make_net(self, key) -> PredictionNet:
        return PredictionNet(
            self.config.core, self.input_size, 1, key=key, cell=self._cell
        )

    def init(self, key: Array) -> AgentState:
        """Fresh parameters, optimizer state, carries and zero traces."""
        net = self._make_net(key)
        params = eqx.filter(net, eqx.is_inexact_array)
        opt_state = self.optimizer.init(params)
        b = self.num_streams
        z = jax.tree.map(lambda x: jnp.zeros((b, *x.shape), x.dtype), params)
        dtype = _float_dtype()
        extra = TDState(
            batched_initial_carry(net, b),
            z,
            jnp.zeros((b,), dtype),
            jnp.zeros((b,), bool),
        )
        return AgentState(net, opt_state, jnp.zeros((), jnp.int32), extra)

    def update(
        self, state: AgentState, batch: CumulantBatch
    ) -> tuple[AgentState, dict[str, Array]]:
        """One TD(lambda) step of every stream; metrics include the predictions."""
        cfg = self.config
        dyn, static = eqx.partition(state.params, eqx.is_inexact_array)
        td: TDState = state.extra

        def one(carry, z, v_prev, started, x, c, reset):
            def value(p):
                y, c1 = eqx.combine(p, static).step(carry, x, reset)
                return y[0], c1

            (v, carry_new), g = jax.value_and_grad(value, has_aux=True)(dyn)
            valid = (started & ~reset).astype(v.dtype)
            delta = valid * (c + cfg.discount * jax.lax.stop_gradient(v) - v_prev)
            direction = jax.tree.map(lambda e: -delta * e, z)
            keep = cfg.discount * cfg.trace_lambda * (1.0 - reset.astype(v.dtype))
            z_new = jax.tree.map(lambda e, gi: keep * e + gi, z, g)
            return direction, carry_new, z_new, v, delta

        direction, carry, z, v, delta = jax.vmap(one)(
            td.carry,
            td.trace,
            td.value,
            td.started,
            jnp.asarray(batch.inputs),
            jnp.asarray(batch.cumulants, _float_dtype()),
            jnp.asarray(batch.resets, bool),
        )
        grads = jax.tree.map(lambda d: jnp.mean(d, 0), direction)
        loss = jnp.mean(0.5 * delta**2)
        extra = TDState(carry, z, v, jnp.ones_like(td.started))
        new, guard = apply_if_finite(state, grads, self.optimizer, loss, extra)
        return new, {
            "loss": loss,
            "td_error": jnp.mean(jnp.abs(delta)),
            "prediction": v,
            **guard,
        }


def run_stream(
    learner: SequenceLearner | TDPredictor, state: AgentState, data: Any
) -> tuple[AgentState, dict[str, Array]]:
    """Learns from a whole stream in one ``lax.scan`` (jit it).

    ``SequenceLearner``: ``data`` is a :class:`SequenceBatch` of ``(B, N * L,
    ...)``, cut into ``N`` segments of ``L = segment_length`` steps, one update
    each. ``TDPredictor``: a :class:`CumulantBatch` of ``(B, T, ...)``, one
    update per step. Metrics are stacked on axis 0 (updates).
    """
    if isinstance(learner, SequenceLearner):
        L = learner.config.segment_length
        total = data.inputs.shape[1]
        if total % L:
            raise ValueError(
                f"the stream's {total} steps do not split into segments of "
                f"segment_length={L}."
            )

        def seg(x):
            x = x.reshape(x.shape[0], total // L, L, *x.shape[2:])
            return jnp.swapaxes(x, 0, 1)

        segs = jax.tree.map(seg, data)
    else:
        segs = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), data)
    return jax.lax.scan(learner.update, state, segs)
