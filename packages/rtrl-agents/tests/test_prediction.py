"""The prediction learners: the copy task (supervised, RTRL across segments),
TD(lambda) prediction on trace conditioning, and their gradients against BPTT
over the whole sequence."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from rtrl_agents_testdata import copy_task, discounted_returns, trace_conditioning

import rtrl_agents as ra

# ---------------------------------------------------------------- copy task

COPY_LEN, COPY_WIDTH = 4, 2  # bit i is recalled 5 steps after it was shown


def _copy_accuracy(method: str, segment_length: int, episodes: int) -> float:
    data = copy_task(16, episodes, COPY_LEN, COPY_WIDTH)
    cfg = ra.SequenceLearnerConfig(
        core=ra.CoreConfig(cell="elstm", hidden_size=32, method=method),
        segment_length=segment_length,
        learning_rate=1e-2,
    )
    learner = ra.sequence_learner(cfg, COPY_WIDTH + 2, COPY_WIDTH, 16)
    state = learner.init(jax.random.PRNGKey(0))
    _, m = jax.jit(lambda s, d: ra.run_stream(learner, s, d))(state, data)
    acc, scored = np.asarray(m["bit_accuracy"]), np.asarray(m["scored"])
    k = len(acc) // 10  # the last 10% of the updates
    return float((acc[-k:] * scored[-k:]).sum() / scored[-k:].sum())


def test_copy_task_rtrl_across_segments():
    # Segments of 3 steps, recall lag 5: every recall's cue lies in an earlier
    # segment, so the gradient must come through the carried traces.
    acc = _copy_accuracy("rtrl", 3, 1200)
    print(f"copy task (L={COPY_LEN}, {COPY_WIDTH} bits), RTRL, segments of 3: {acc}")
    assert acc > 0.95


def test_copy_task_online_rtrl_every_step():
    acc = _copy_accuracy("rtrl-online", 1, 1000)
    print(f"copy task (L={COPY_LEN}, {COPY_WIDTH} bits), online RTRL per step: {acc}")
    assert acc > 0.95


@pytest.mark.slow
def test_copy_task_tbptt_segments_stay_near_chance():
    acc = _copy_accuracy("tbptt", 3, 1200)
    print(f"copy task, TBPTT segments of 3: {acc}")
    assert acc < 0.7


# ------------------------------------------------------ trace conditioning

GAMMA = 0.8


def _td_errors(cell: str, method: str = "rtrl-online"):
    steps = 20000
    data, c = trace_conditioning(4, steps, isi=4, iti=(6, 12))
    cfg = ra.TDPredictorConfig(
        core=ra.CoreConfig(cell=cell, hidden_size=16, method=method),
        discount=GAMMA,
        trace_lambda=0.9,
        learning_rate=1e-3,
    )
    learner = ra.td_predictor(cfg, 2, 4)
    state = learner.init(jax.random.PRNGKey(0))
    _, m = jax.jit(lambda s, d: ra.run_stream(learner, s, d))(state, data)
    v = np.asarray(m["prediction"])  # (updates, B, 1)
    v = v.transpose(1, 0, 2).reshape(v.shape[1], -1)  # (B, T)
    g = discounted_returns(c, GAMMA)
    window = slice(-steps // 5, -50)  # last 20%, away from the truncated end
    err = float(np.mean((v[:, window] - g[:, window]) ** 2))
    # The best any memoryless predictor can do: the mean return of each input
    # pattern, fitted in hindsight on the same steps.
    x = np.asarray(data.inputs)[:, window]
    pattern = (2 * x[..., 0] + x[..., 1]).ravel()
    gs = g[:, window].ravel()
    best = sum(
        np.sum((gs[pattern == p] - gs[pattern == p].mean()) ** 2) for p in {0, 1, 2}
    )
    return err, float(best / gs.size)


def test_td_lambda_with_online_rtrl_beats_any_memoryless_predictor():
    err, memoryless = _td_errors("elstm")
    print(f"TD(lambda) MSE vs return: RTRL {err:.4f}, best memoryless {memoryless:.4f}")
    assert err < 0.2 * memoryless


def test_td_lambda_memoryless_learner_reaches_only_the_memoryless_optimum():
    err, memoryless = _td_errors("none")
    print(f"TD(lambda) MSE, no core: {err:.4f}, best memoryless {memoryless:.4f}")
    assert memoryless * 0.95 < err < memoryless * 1.5


# --------------------------------------------------- gradients against BPTT


def _prefix_loss(net, batch, lo, hi):
    """Loss of steps [lo, hi) of stream batch, BPTT from the stream's start."""

    def one(x, r):
        ys, _ = net.unroll(net.initial_carry(), x[:hi], r[:hi], method="bptt")
        return ys[lo:]

    ys = jax.vmap(one)(batch.inputs, batch.resets)
    seg = ra.SequenceBatch(
        batch.inputs[:, lo:hi],
        batch.targets[:, lo:hi],
        batch.mask[:, lo:hi],
        batch.resets[:, lo:hi],
    )
    t = seg.targets
    m = seg.mask[..., None]
    per = optax.sigmoid_binary_cross_entropy(ys, t)
    return jnp.sum(m * per) / jnp.maximum(jnp.sum(m) * ys.shape[-1], 1.0)


def _segment_grads(method, cell, seg_len):
    """Per segment: the learner's gradient (carry moved along, parameters fixed)
    and the BPTT gradient of that segment's loss over the whole prefix."""
    data = copy_task(2, 2, 2, 1, seed=1)  # 10 steps, a reset every 5
    data = ra.SequenceBatch(*(jnp.asarray(x) for x in data))
    data = data._replace(mask=jnp.ones_like(data.mask))  # score every step
    cfg = ra.SequenceLearnerConfig(
        core=ra.CoreConfig(cell=cell, hidden_size=3, method=method),
        segment_length=seg_len,
    )
    learner = ra.sequence_learner(cfg, 3, 1, 2)
    state = learner.init(jax.random.PRNGKey(4))
    bounds = [(lo, lo + seg_len) for lo in range(0, 10, seg_len)]

    @eqx.filter_jit
    def learner_grads(state):
        def body(carry, seg):
            (_, (carry, _)), grads = eqx.filter_value_and_grad(
                ra.sequence_loss, has_aux=True
            )(state.params, carry, seg, cfg.loss)
            return carry, grads

        segs = jax.tree.map(
            lambda x: jnp.stack([x[:, lo:hi] for lo, hi in bounds]), data
        )
        return jax.lax.scan(body, state.carry, segs)[1]

    @eqx.filter_jit
    def bptt_grads(net):
        def losses(n):
            return jnp.stack([_prefix_loss(n, data, lo, hi) for lo, hi in bounds])

        return eqx.filter_jacrev(losses)(net)

    got, want = learner_grads(state), bptt_grads(state.params)
    return [
        (
            jax.tree.map(lambda x, i=i: x[i], got),
            jax.tree.map(lambda x, i=i: x[i], want),
        )
        for i in range(len(bounds))
    ]


def _max_err(a, b):
    la = jax.tree.leaves(eqx.filter(a, eqx.is_inexact_array))
    lb = jax.tree.leaves(eqx.filter(b, eqx.is_inexact_array))
    assert len(la) == len(lb) > 0
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(la, lb, strict=True))


@pytest.mark.parametrize(
    ("method", "cell", "seg_len"),
    [
        ("rtrl", "elstm", 2),
        pytest.param("rtrl-online", "elstm", 1, marks=pytest.mark.slow),
        pytest.param("rtrl", "gru", 5, marks=pytest.mark.slow),
        pytest.param("rtrl-online", "lru", 2, marks=pytest.mark.slow),
    ],
)
def test_sequence_learner_gradient_equals_bptt_over_the_whole_sequence(
    x64, method, cell, seg_len
):
    for grads, ref in _segment_grads(method, cell, seg_len):
        assert _max_err(grads, ref) < 1e-10


@pytest.mark.slow
def test_tbptt_sequence_learner_gradient_is_truncated(x64):
    errs = [_max_err(g, r) for g, r in _segment_grads("tbptt", "elstm", 2)]
    assert errs[0] < 1e-12  # the first segment has no past
    assert max(errs) > 1e-4


def test_td_trace_equals_discounted_sum_of_bptt_gradients(x64):
    gl, T = 0.9 * 0.5, 7
    data, _ = trace_conditioning(1, T, isi=2, iti=(1, 3), seed=3)
    data = ra.CumulantBatch(*(jnp.asarray(x) for x in data))
    cfg = ra.TDPredictorConfig(
        core=ra.CoreConfig(cell="elstm", hidden_size=3), discount=0.9, trace_lambda=0.5
    )
    learner = ra.td_predictor(cfg, 2, 1)
    state = learner.init(jax.random.PRNGKey(1))
    # A zero step size freezes the parameters, so the trace is comparable to
    # BPTT gradients of one network.
    state = eqx.tree_at(lambda s: s.hyperparams.learning_rate, state, jnp.asarray(0.0))
    params = state.params
    state, _ = eqx.filter_jit(ra.run_stream)(learner, state, data)
    net = params

    def v(n, k):
        ys, _ = n.unroll(
            n.initial_carry(),
            data.inputs[0, : k + 1],
            data.resets[0, : k + 1],
            method="bptt",
        )
        return ys[k, 0]

    @eqx.filter_jit
    def reference(net):
        vs = eqx.filter_jacrev(lambda n: jnp.stack([v(n, k) for k in range(T)]))(net)
        w = gl ** jnp.arange(T - 1, -1, -1)
        vs = eqx.filter(vs, eqx.is_inexact_array)
        return jax.tree.map(lambda g: jnp.tensordot(w, g, 1), vs)

    want = reference(net)
    got = jax.tree.map(lambda z: z[0], state.trace)
    assert _max_err(got, want) < 1e-10
    assert _max_err(got, jax.tree.map(jnp.zeros_like, got)) > 1e-3


def test_prediction_configs_validate():
    with pytest.raises(ValueError, match="segment_length must be a positive int"):
        ra.SequenceLearnerConfig(segment_length=0)
    with pytest.raises(ValueError, match="loss='ce' is unknown"):
        ra.SequenceLearnerConfig(loss="ce")
    with pytest.raises(ValueError, match=r"trace_lambda=1\.5 must lie"):
        ra.TDPredictorConfig(trace_lambda=1.5)
    with pytest.raises(ValueError, match="optimizer='rmsprop' is unknown"):
        ra.TDPredictorConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        ra.sequence_learner(ra.SequenceLearnerConfig(), 3, 0)
    learner = ra.sequence_learner(
        ra.SequenceLearnerConfig(segment_length=4), 4, 2, num_streams=2
    )
    data = copy_task(2, 1, 4, 2)  # 9 steps: not a multiple of 4
    with pytest.raises(ValueError, match="do not split into segments"):
        ra.run_stream(learner, learner.init(jax.random.PRNGKey(0)), data)
