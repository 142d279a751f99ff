"""Supervised and prediction learners for the seeds' diagnostics.

* :func:`sequence_learner`: supervised sequence learning (the copy task): a
  cell, a linear readout, a per-output loss (:func:`sequence_loss`:
  cross-entropy per bit or squared error), Adam, one update per segment of
  ``segment_length`` steps (1: every step). The carry (state and RTRL traces)
  crosses segments, so with RTRL the gradient of a segment's loss reaches the
  whole past.
* :func:`td_predictor`: TD(lambda) prediction with RTRL (trace conditioning):
  predicts the discounted sum of a cumulant; one update per segment of
  ``segment_length`` steps (1: every step), the eligibility trace advanced every
  step.

Both are :class:`Learner` records of pure functions over a typed state, share
the agents' pieces (the recurrent-network wiring, the finite-update guard, the
eligibility-trace update) and take data as arrays (:class:`SequenceBatch`,
:class:`CumulantBatch`): no environment package is imported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

import rtrl_cells as rc

from ._config import SequenceLearnerConfig, TDPredictorConfig
from ._core import (
    AbstractOptimizedState,
    Carry,
    Hyperparams,
    Metrics,
    S,
    apply_gradients,
    batched_initial_carry,
    check_config,
    hyperparams,
)
from ._losses import eligibility_trace
from ._networks import AbstractRecurrentNet, _float_dtype, make_core


class PredictionNet(AbstractRecurrentNet):
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

    def unroll(
        self,
        carry: Carry,
        xs: Float[Array, "T I"],
        resets: Bool[Array, " T"],
        method: Any = None,
    ) -> tuple[Float[Array, "T O"], Carry]:
        """``T`` steps from ``carry``: ``(outputs (T, O), carry_T)``.

        ``method`` is the cell's unroll method; default: ``self.method``
        (``"rtrl"`` is chunked, ``"rtrl-online"`` online, ``"tbptt"`` bptt within
        the call: aliases in ``rtrl_cells.METHODS``).
        """
        hs, carry_T = self.run_core(
            carry, jnp.asarray(xs, _float_dtype()), resets, method=method
        )
        return jax.vmap(self.readout)(hs), carry_T

    def step(
        self, carry: Carry, x_t: Array, reset_t: Array
    ) -> tuple[Float[Array, " O"], Carry]:
        """One step with online RTRL (TBPTT cores: one-step gradient)."""
        ys, carry = self.unroll(
            carry,
            jnp.asarray(x_t)[None],
            jnp.asarray(reset_t)[None],
            method=self.step_method(),
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
    """A segment of ``T`` steps of ``B`` streams, batch-first.

    Attributes:
        inputs: ``(B, T, I)``.
        cumulants: ``(B, T)``: the cumulant that arrived with each input.
        resets: ``(B, T)`` bool: the input starts a new episode.
    """

    inputs: Array
    cumulants: Array
    resets: Array


class SequenceLearnerState(AbstractOptimizedState):
    """The sequence learner's state.

    Attributes:
        params: the network.
        opt_state: Adam's moments (and the clip's state).
        hyperparams: the step size.
        update_count: updates (segments) applied.
        carry: every stream's carry (state and RTRL traces).
    """

    params: PredictionNet
    hyperparams: Hyperparams
    update_count: Int[Array, ""]
    opt_state: optax.OptState
    carry: Carry


class TDPredictorState(AbstractOptimizedState):
    """The TD learner's state.

    Attributes:
        params: the network.
        opt_state: the optimizer's state.
        hyperparams: the step size.
        update_count: updates (segments) applied.
        carry: every stream's carry (state and RTRL traces).
        trace: every stream's eligibility trace ``z`` over all parameters.
        value: every stream's previous prediction ``v_{t-1}``.
        started: false until a stream has a previous prediction (and after a
            reset): no TD error is formed across an episode boundary.
    """

    params: PredictionNet
    hyperparams: Hyperparams
    update_count: Int[Array, ""]
    opt_state: optax.OptState
    carry: Carry
    trace: Any
    value: Float[Array, " B"]
    started: Bool[Array, " B"]


@dataclasses.dataclass(frozen=True, eq=False)
class Learner(Generic[S]):
    """A prediction learner: pure functions over its typed state ``S``.

    Attributes:
        init: ``init(key) -> state``.
        update: ``update(state, batch) -> (state, metrics)`` on one segment of
            ``segment_length`` steps of every stream.
        config: the config it was made from.
        num_streams: ``B``.
        segment_length: steps per update.
    """

    init: Callable[[PRNGKeyArray], S]
    update: Callable[[S, Any], tuple[S, Metrics]]
    config: Any
    num_streams: int
    segment_length: int


def _optimizer(name: str, eps: float, clip: float | None):
    """The step-size-free transformation (the step size lives in state)."""
    opt = optax.scale_by_adam(eps=eps) if name == "adam" else optax.identity()
    if clip is None:
        return opt
    return optax.chain(optax.clip_by_global_norm(clip), opt)


def _check_sizes(what: str, **sizes: object) -> None:
    for name, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{what} {name} must be >= 1, got {v!r}.")


def sequence_loss(
    net: PredictionNet, carry: Carry, batch: SequenceBatch, loss: str = "bce"
) -> tuple[Array, tuple[Carry, Metrics]]:
    """The mean loss of one segment of every stream, run from ``carry``.

    Differentiate it with ``eqx.filter_value_and_grad(..., has_aux=True)``: with
    an RTRL core the gradient is BPTT inside the segment plus ``lambda_0 .
    E_0`` (untruncated); with TBPTT it stops at the segment start.

    Args:
        net: the network.
        carry: ``(B, ...)`` every stream's carry.
        batch: the segment.
        loss: ``"bce"`` (sigmoid cross-entropy per output bit) or ``"mse"``.

    Returns:
        ``(loss, (carry_T, metrics))``: metrics ``loss``, ``bit_accuracy``,
        ``scored`` (outputs scored).
    """
    ys, carry_T = jax.vmap(net.unroll)(carry, batch.inputs, batch.resets)
    t = jnp.asarray(batch.targets, ys.dtype)
    m = jnp.asarray(batch.mask, ys.dtype)[..., None]
    if loss == "bce":
        per = optax.sigmoid_binary_cross_entropy(ys, t)
        correct = (ys > 0) == (t > 0.5)
    else:
        per = 0.5 * (ys - t) ** 2
        correct = jnp.abs(ys - t) < 0.5
    n = jnp.sum(m) * ys.shape[-1]
    safe = jnp.maximum(n, 1.0)
    value = jnp.sum(m * per) / safe
    acc = jnp.sum(m * correct) / safe
    return value, (carry_T, {"loss": value, "bit_accuracy": acc, "scored": n})


def sequence_learner(
    config: SequenceLearnerConfig,
    input_size: int,
    output_size: int,
    num_streams: int = 1,
    *,
    cell: rc.AbstractCell | None = None,
) -> Learner[SequenceLearnerState]:
    """Supervised sequence learning on an rtrl-cells core (the copy task).

    ``update`` takes one segment (a :class:`SequenceBatch` of ``(B,
    segment_length, ...)``): it runs the cell from the carried state and traces
    with the core's method, takes the gradient of :func:`sequence_loss` and
    applies one Adam step. With ``"rtrl"``/``"rtrl-online"`` that gradient is
    BPTT inside the segment plus ``lambda_0 . E_0``: untruncated (tested equal
    to BPTT over the whole sequence); with ``"tbptt"`` it stops at the segment
    start. Parameters change between segments, as in online RTRL.

    Args:
        config: the learner's configuration.
        input_size: features per step.
        output_size: outputs per step.
        num_streams: ``B``, the streams learned from in parallel.
        cell: optionally, any rtrl-cells cell to use as the core.

    Raises:
        ValueError: (one line) a config of another type or a size below 1.
    """
    check_config(config, SequenceLearnerConfig, "sequence_learner")
    _check_sizes(
        "sequence_learner",
        input_size=input_size,
        output_size=output_size,
        num_streams=num_streams,
    )

    def make_net(key: PRNGKeyArray) -> PredictionNet:
        return PredictionNet(config.core, input_size, output_size, key=key, cell=cell)

    eqx.filter_eval_shape(make_net, jax.random.PRNGKey(0))
    optimizer = _optimizer("adam", config.adam_eps, config.max_grad_norm)

    def init(key: PRNGKeyArray) -> SequenceLearnerState:
        net = make_net(key)
        return SequenceLearnerState(
            params=net,
            hyperparams=hyperparams(config.learning_rate),
            update_count=jnp.zeros((), jnp.int32),
            opt_state=optimizer.init(eqx.filter(net, eqx.is_inexact_array)),
            carry=batched_initial_carry(net, num_streams),
        )

    def update(
        state: SequenceLearnerState, batch: SequenceBatch
    ) -> tuple[SequenceLearnerState, Metrics]:
        (loss, (carry_T, metrics)), grads = eqx.filter_value_and_grad(
            sequence_loss, has_aux=True
        )(state.params, state.carry, batch, config.loss)
        lr = state.hyperparams.learning_rate
        new, guard = apply_gradients(state, grads, optimizer, lr, loss, carry=carry_T)
        return new, {**metrics, **guard}

    return Learner(init, update, config, num_streams, config.segment_length)


def td_predictor(
    config: TDPredictorConfig,
    input_size: int,
    num_streams: int = 1,
    *,
    cell: rc.AbstractCell | None = None,
) -> Learner[TDPredictorState]:
    """TD(lambda) prediction with RTRL: the eligibility trace moves every step.

    Per stream, at step ``t`` with input ``x_t`` and cumulant ``c_t``:
    ``v_t = w . h_t`` (with ``h_t`` from the cell, whose gradient w.r.t. its
    parameters comes from RTRL, ``dv/dh . E_t``); ``delta = c_t + gamma v_t -
    v_{t-1}`` (none across a reset or at the start); the update direction
    gathers ``-delta z_{t-1}``; then ``z_t = gamma lambda z_{t-1} + grad v_t``
    (cleared at resets; :func:`~rtrl_agents.eligibility_trace`). The directions
    of a segment of ``segment_length`` steps (parameters fixed within it) are
    summed, averaged over streams and applied once (SGD or Adam). Within a
    segment the core runs with its method: RTRL's ``grad v_t`` is exact;
    TBPTT's reaches back to the segment's start only. The target is ``G_t =
    sum_k gamma^(k-1) c_(t+k)``.

    Args:
        config: the learner's configuration.
        input_size: features per step.
        num_streams: ``B``.
        cell: optionally, any rtrl-cells cell to use as the core.

    Raises:
        ValueError: (one line) a config of another type or a size below 1.
    """
    check_config(config, TDPredictorConfig, "td_predictor")
    _check_sizes("td_predictor", input_size=input_size, num_streams=num_streams)

    def make_net(key: PRNGKeyArray) -> PredictionNet:
        return PredictionNet(config.core, input_size, 1, key=key, cell=cell)

    eqx.filter_eval_shape(make_net, jax.random.PRNGKey(0))
    optimizer = _optimizer(config.optimizer, config.adam_eps, config.max_grad_norm)

    def init(key: PRNGKeyArray) -> TDPredictorState:
        net = make_net(key)
        params = eqx.filter(net, eqx.is_inexact_array)
        b = num_streams
        z = jax.tree.map(lambda x: jnp.zeros((b, *x.shape), x.dtype), params)
        return TDPredictorState(
            params=net,
            hyperparams=hyperparams(config.learning_rate),
            update_count=jnp.zeros((), jnp.int32),
            opt_state=optimizer.init(params),
            carry=batched_initial_carry(net, b),
            trace=z,
            value=jnp.zeros((b,), _float_dtype()),
            started=jnp.zeros((b,), bool),
        )

    def update(
        state: TDPredictorState, batch: CumulantBatch
    ) -> tuple[TDPredictorState, Metrics]:
        """One segment of every stream; metrics include the predictions
        ``(B, T)``."""
        dyn, static = eqx.partition(state.params, eqx.is_inexact_array)
        gl = config.discount * config.trace_lambda

        def one(carry, z, v_prev, started, xs, cs, resets):
            def values(p):
                ys, carry_T = eqx.combine(p, static).unroll(carry, xs, resets)
                return ys[:, 0], carry_T

            vs, carry_T = values(dyn)
            grads = jax.jacrev(lambda p: values(p)[0])(dyn)  # leaves (T, ...)

            def step(acc, inp):
                z, v_prev, started = acc
                v, g, c, reset = inp
                valid = (started & ~reset).astype(v.dtype)
                delta = valid * (c + config.discount * v - v_prev)
                direction = jax.tree.map(lambda e: -delta * e, z)
                z = eligibility_trace(z, g, gl * (1.0 - reset.astype(v.dtype)))
                return (z, v, jnp.ones_like(started)), (direction, delta)

            (z, v_last, started), (directions, deltas) = jax.lax.scan(
                step,
                (z, v_prev, started),
                (jax.lax.stop_gradient(vs), grads, cs, resets),
            )
            direction = jax.tree.map(lambda d: jnp.sum(d, 0), directions)
            return direction, carry_T, z, v_last, started, vs, deltas

        direction, carry, z, v_last, started, vs, deltas = jax.vmap(one)(
            state.carry,
            state.trace,
            state.value,
            state.started,
            jnp.asarray(batch.inputs),
            jnp.asarray(batch.cumulants, _float_dtype()),
            jnp.asarray(batch.resets, bool),
        )
        grads = jax.tree.map(lambda d: jnp.mean(d, 0), direction)
        loss = jnp.mean(0.5 * deltas**2)
        new, guard = apply_gradients(
            state,
            grads,
            optimizer,
            state.hyperparams.learning_rate,
            loss,
            carry=carry,
            trace=z,
            value=v_last,
            started=started,
        )
        return new, {
            "loss": loss,
            "td_error": jnp.mean(jnp.abs(deltas)),
            "prediction": vs,
            **guard,
        }

    return Learner(init, update, config, num_streams, config.segment_length)


def run_stream(
    learner: Learner[S], state: S, data: SequenceBatch | CumulantBatch
) -> tuple[S, Metrics]:
    """Learns from a whole stream in one ``lax.scan`` (jit it).

    ``data`` (a :class:`SequenceBatch` or :class:`CumulantBatch` of ``(B, N *
    L, ...)``) is cut into ``N`` segments of ``L = learner.segment_length``
    steps, one update each. Metrics are stacked on axis 0 (updates).

    Raises:
        ValueError: the stream's length is not a multiple of ``L``.
    """
    L = learner.segment_length
    total = data.inputs.shape[1]
    if total % L:
        raise ValueError(
            f"the stream's {total} steps do not split into segments of "
            f"segment_length={L}."
        )

    def seg(x):
        x = x.reshape(x.shape[0], total // L, L, *x.shape[2:])
        return jnp.swapaxes(x, 0, 1)

    return jax.lax.scan(learner.update, state, jax.tree.map(seg, data))
