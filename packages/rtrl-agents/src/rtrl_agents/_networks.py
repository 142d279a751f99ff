"""Torsos, policy and value heads, and the recurrent actor-critic network.

Everything is an unbatched, single-stream Equinox module; batch with ``jax.vmap``.
"""

from __future__ import annotations

import abc
import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

import rtrl_cells as rc

from ._config import CoreConfig, HeadConfig, NetworkConfig, TorsoConfig
from ._env import action_dim, is_discrete

_ACT = {"relu": jax.nn.relu, "tanh": jnp.tanh, "leaky_relu": jax.nn.leaky_relu}

LAYER_NORM_EPS = 1e-5
"""PyTorch's ``F.layer_norm`` epsilon (Elsayed et al.'s networks use its default)."""


def _act(name: str):
    return _ACT[name]


def layer_norm(
    x: Float[Array, " F"], eps: float = LAYER_NORM_EPS
) -> Float[Array, " F"]:
    """LayerNorm without learnable parameters: ``(x - mean) / sqrt(var + eps)``
    over the features (population variance), as ``F.layer_norm(x, x.size())``
    in Elsayed et al. 2024's networks."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps)


def _hidden(layer: eqx.nn.Linear, h: Array, activation: str, norm: bool) -> Array:
    """A hidden dense layer: linear, optionally LayerNorm, then the activation."""
    z = layer(h)
    return _act(activation)(layer_norm(z) if norm else z)


class MLPTorso(eqx.Module):
    """A multi-layer perceptron for vector observations (flattened first)."""

    layers: tuple[eqx.nn.Linear, ...]
    activation: str = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    layer_norm: bool = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        config: TorsoConfig,
        *,
        key: PRNGKeyArray,
        layer_norm: bool = False,
    ):
        """Builds the MLP.

        Args:
            in_size: the flattened observation's size.
            config: the torso's configuration.
            key: PRNG key of the parameters.
            layer_norm: a parameter-free :func:`layer_norm` after each layer,
                before the activation (Elsayed et al. 2024).
        """
        self.layer_norm = layer_norm
        sizes = (in_size, *config.hidden_sizes)
        keys = jax.random.split(key, max(len(sizes) - 1, 1))
        self.layers = tuple(
            eqx.nn.Linear(a, b, key=k)
            for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=False)
        )
        self.activation = config.activation
        self.out_size = sizes[-1]

    def __call__(self, obs: Array) -> Float[Array, " F"]:
        h = jnp.ravel(obs).astype(_float_dtype())
        for layer in self.layers:
            h = _hidden(layer, h, self.activation, self.layer_norm)
        return h

    def frames(self, obs: Array) -> Float[Array, "T F"]:
        """The torso on each of ``T`` observations: ``(T, *obs_shape) -> (T, F)``."""
        return jax.vmap(self)(obs)


class _ResidualBlock(eqx.Module):
    conv0: eqx.nn.Conv2d
    conv1: eqx.nn.Conv2d

    def __init__(self, channels: int, *, key: PRNGKeyArray):
        k0, k1 = jax.random.split(key)
        self.conv0 = eqx.nn.Conv2d(channels, channels, 3, padding=1, key=k0)
        self.conv1 = eqx.nn.Conv2d(channels, channels, 3, padding=1, key=k1)

    def __call__(self, x: Array) -> Array:
        h = self.conv0(jax.nn.relu(x))
        h = self.conv1(jax.nn.relu(h))
        return x + h


class _ImpalaStage(eqx.Module):
    conv: eqx.nn.Conv2d
    blocks: tuple[_ResidualBlock, ...]

    def __init__(self, in_ch: int, out_ch: int, num_blocks: int, *, key):
        keys = jax.random.split(key, num_blocks + 1)
        self.conv = eqx.nn.Conv2d(in_ch, out_ch, 3, padding=1, key=keys[0])
        self.blocks = tuple(_ResidualBlock(out_ch, key=k) for k in keys[1:])

    def __call__(self, x: Array) -> Array:
        # Max-pool 3x3, stride 2, padding 1, written functionally so the
        # module holds arrays only (jit can return it).
        x = jax.lax.reduce_window(
            self.conv(x),
            -jnp.inf,
            jax.lax.max,
            (1, 3, 3),
            (1, 2, 2),
            ((0, 0), (1, 1), (1, 1)),
        )
        for block in self.blocks:
            x = block(x)
        return x


class ImpalaTorso(eqx.Module):
    """IMPALA's deep ResNet (Espeholt et al. 2018), as in Irie et al. 2024.

    Stages of conv 3x3 -> max-pool 3x3 stride 2 -> residual blocks of
    ReLU-conv-ReLU-conv; then ReLU, flatten, a fully connected layer with ReLU.
    ``uint8`` pixels are scaled to ``[0, 1]``.
    """

    stages: tuple[_ImpalaStage, ...]
    fc: eqx.nn.Linear
    channels_first: bool = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    cpu_steps_per_call: int = eqx.field(static=True)

    def __init__(
        self, obs_shape: tuple[int, ...], config: TorsoConfig, *, key: PRNGKeyArray
    ):
        if len(obs_shape) != 3:
            raise ValueError(
                f"the IMPALA torso needs image observations of rank 3, got shape "
                f"{obs_shape}; use TorsoConfig(kind='mlp') for vectors."
            )
        c, h, w = obs_shape if config.channels_first else (obs_shape[2], *obs_shape[:2])
        keys = jax.random.split(key, len(config.channels) + 1)
        stages = []
        for out_ch, k in zip(config.channels, keys[:-1], strict=False):
            stages.append(_ImpalaStage(c, out_ch, config.blocks_per_stage, key=k))
            c, h, w = out_ch, math.ceil(h / 2), math.ceil(w / 2)
        self.stages = tuple(stages)
        self.fc = eqx.nn.Linear(c * h * w, config.fc_size, key=keys[-1])
        self.channels_first = config.channels_first
        self.out_size = config.fc_size
        self.cpu_steps_per_call = config.cpu_steps_per_call

    def __call__(self, obs: Array) -> Float[Array, " F"]:
        x = obs
        if not self.channels_first:
            x = jnp.transpose(x, (2, 0, 1))
        if jnp.issubdtype(x.dtype, jnp.integer):
            x = x.astype(_float_dtype()) / 255.0
        x = x.astype(_float_dtype())
        for stage in self.stages:
            x = stage(x)
        x = jax.nn.relu(x).reshape(-1)
        return jax.nn.relu(self.fc(x))

    def frames(self, obs: Array) -> Float[Array, "T F"]:
        """The torso on each of ``T`` frames: ``(T, *obs_shape) -> (T, F)``.

        On the CPU backend the frames go through in calls of
        ``TorsoConfig.cpu_steps_per_call`` steps (under ``jax.vmap`` over
        streams, that many steps of every stream). The result is the same
        function; only XLA's batch per convolution changes.
        """
        k = self.cpu_steps_per_call
        if obs.shape[0] <= k or jax.default_backend() != "cpu":
            return jax.vmap(self)(obs)
        calls = [jax.vmap(self)(obs[i : i + k]) for i in range(0, obs.shape[0], k)]
        return jnp.concatenate(calls)


class _MLPHead(eqx.Module):
    layers: tuple[eqx.nn.Linear, ...]
    activation: str = eqx.field(static=True)
    layer_norm: bool = eqx.field(static=True)

    def __init__(
        self,
        in_size,
        hidden,
        out_size,
        activation,
        *,
        key,
        scale=1.0,
        layer_norm: bool = False,
    ):
        self.layer_norm = layer_norm
        sizes = (in_size, *hidden, out_size)
        keys = jax.random.split(key, len(sizes) - 1)
        layers = [
            eqx.nn.Linear(a, b, key=k)
            for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        ]
        last = layers[-1]
        layers[-1] = eqx.tree_at(lambda m: m.weight, last, last.weight * scale)
        self.layers = tuple(layers)
        self.activation = activation

    def __call__(self, h: Array) -> Array:
        for layer in self.layers[:-1]:
            h = _hidden(layer, h, self.activation, self.layer_norm)
        return self.layers[-1](h)


class AbstractPolicyHead(eqx.Module):
    """A policy head: features -> distribution parameters (one flat array).

    The distribution functions take those parameters, so trajectories can store
    the behaviour policy as a plain array.
    """

    def __call__(self, h: Array) -> Array:
        raise NotImplementedError

    def sample(self, key: PRNGKeyArray, params: Array) -> Array:
        raise NotImplementedError

    def mode(self, params: Array) -> Array:
        raise NotImplementedError

    def log_prob(self, params: Array, action: Array) -> Array:
        raise NotImplementedError

    def entropy(self, params: Array) -> Array:
        raise NotImplementedError


class CategoricalHead(AbstractPolicyHead):
    """Softmax policy over ``n`` actions; parameters are the logits."""

    mlp: _MLPHead
    num_actions: int = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        num_actions: int,
        config: HeadConfig,
        *,
        key,
        layer_norm: bool = False,
    ):
        self.mlp = _MLPHead(
            in_size,
            config.hidden_sizes,
            num_actions,
            config.activation,
            key=key,
            layer_norm=layer_norm,
        )
        self.num_actions = num_actions

    def __call__(self, h: Array) -> Float[Array, " A"]:
        return self.mlp(h)

    def sample(self, key, params):
        return jax.random.categorical(key, params).astype(jnp.int32)

    def mode(self, params):
        return jnp.argmax(params).astype(jnp.int32)

    def log_prob(self, params, action):
        return jax.nn.log_softmax(params)[action]

    def entropy(self, params):
        logp = jax.nn.log_softmax(params)
        return -jnp.sum(jnp.exp(logp) * logp)


class GaussianHead(AbstractPolicyHead):
    """Diagonal Gaussian with a state-independent log standard deviation.

    Parameters are ``[mean; log_std]``. Actions are not squashed; the environment
    clips to its bounds.
    """

    mlp: _MLPHead
    log_std: Array
    shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self, in_size: int, shape, config: HeadConfig, *, key, layer_norm: bool = False
    ):
        self.shape = tuple(int(d) for d in shape)
        dim = math.prod(self.shape)
        self.mlp = _MLPHead(
            in_size,
            config.hidden_sizes,
            dim,
            config.activation,
            key=key,
            scale=0.01,
            layer_norm=layer_norm,
        )
        self.log_std = jnp.full((dim,), config.init_log_std, _float_dtype())

    def __call__(self, h):
        mean = self.mlp(h)
        return jnp.concatenate([mean, jnp.broadcast_to(self.log_std, mean.shape)])

    def _split(self, params):
        dim = params.shape[-1] // 2
        return params[:dim], params[dim:]

    def sample(self, key, params):
        mean, log_std = self._split(params)
        eps = jax.random.normal(key, mean.shape, mean.dtype)
        return (mean + jnp.exp(log_std) * eps).reshape(self.shape)

    def mode(self, params):
        return self._split(params)[0].reshape(self.shape)

    def log_prob(self, params, action):
        mean, log_std = self._split(params)
        a = jnp.reshape(action, mean.shape)
        z = (a - mean) * jnp.exp(-log_std)
        return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi))

    def entropy(self, params):
        _, log_std = self._split(params)
        return jnp.sum(log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e))


class ValueHead(eqx.Module):
    """Features -> scalar state value."""

    mlp: _MLPHead

    def __init__(
        self, in_size: int, config: HeadConfig, *, key, layer_norm: bool = False
    ):
        self.mlp = _MLPHead(
            in_size,
            config.hidden_sizes,
            1,
            config.activation,
            key=key,
            layer_norm=layer_norm,
        )

    def __call__(self, h: Array) -> Float[Array, ""]:
        return self.mlp(h)[0]


def _cell_options(config: CoreConfig) -> dict[str, Any]:
    """The constructor options ``config`` sets, by the constructors' own names."""
    return {
        "nonlinear": config.rtu_nonlinear,
        "activation": config.rtu_activation,
        "r_min": config.r_min,
        "r_max": config.r_max,
    }


def make_core(
    config: CoreConfig,
    input_size: int,
    *,
    key: PRNGKeyArray,
    cell: rc.AbstractCell | None = None,
) -> rc.AbstractCell | None:
    """The core ``config`` names: built, or the given ``cell`` checked against it.

    The cell is built from the registry (``rtrl_cells.CELLS[config.cell]``) with
    the options of ``config`` its constructor takes. A given cell must be what
    ``config`` describes, so that the configuration (and a run's
    ``config.json``) never says one cell while another trains.

    Args:
        config: the core's configuration (``cell="none"``: no core, ``None``).
        input_size: the width of the core's input.
        key: PRNG key of a built cell's parameters.
        cell: optionally, a cell to use instead of building one.

    Raises:
        ValueError: (one line) when ``cell`` is not of the kind ``config.cell``
            names, or its hidden size, input size or an option disagrees.
    """
    if cell is None:
        if not config.recurrent:
            return None
        kind = rc.cell_kind(config.cell)
        options = {k: v for k, v in _cell_options(config).items() if k in kind.options}
        return kind.make(
            input_size=input_size, hidden_size=config.hidden_size, key=key, **options
        )
    given = type(cell).__name__
    kind = rc.cell_kind_of(cell)
    if kind is None:
        raise ValueError(
            f"the cell given is a {given}, which is not a registered cell; register "
            f"it (rtrl_cells.register_cell) and name it in CoreConfig.cell (now "
            f"{config.cell!r}), or drop cell=."
        )
    if kind.name != config.cell:
        raise ValueError(
            f"the cell given is a {given} (registered as {kind.name!r}) but "
            f"CoreConfig.cell={config.cell!r}; set cell={kind.name!r}, or drop cell=."
        )
    hidden = getattr(cell, "hidden_size", None)
    if hidden is None:
        raise ValueError(
            f"the cell given ({given}) has no hidden_size to check against "
            "CoreConfig.hidden_size; give its class a hidden_size property."
        )
    if hidden != config.hidden_size:
        raise ValueError(
            f"the cell given has hidden_size {hidden} but CoreConfig.hidden_size="
            f"{config.hidden_size}; make them agree."
        )
    for option, value in _cell_options(config).items():
        have = getattr(cell, option, value)  # options kept as plain attributes
        if option in kind.options and not eqx.is_array(have) and have != value:
            raise ValueError(
                f"the cell given has {option}={have!r} but the CoreConfig sets "
                f"{value!r}; make them agree."
            )
    if cell.input_size != input_size:
        raise ValueError(
            f"the given cell takes inputs of size {cell.input_size}, but the "
            f"core's input has {input_size}; build it with input_size={input_size}."
        )
    return cell


def check_action_space(config: HeadConfig, action_space: Any) -> str:
    """The policy distribution for ``action_space``, or a ValueError saying why not."""
    discrete = is_discrete(action_space)
    continuous = not discrete and hasattr(action_space, "shape")
    if not (discrete or continuous):
        raise ValueError(
            f"action space {action_space!r} is neither discrete (has .n) nor "
            f"continuous (has .shape); the policy heads serve only those."
        )
    want = "categorical" if discrete else "gaussian"
    if config.distribution not in ("auto", want):
        raise ValueError(
            f"HeadConfig.distribution={config.distribution!r} cannot serve a "
            f"{'discrete' if discrete else 'continuous'} action space; use "
            f"{want!r} or 'auto'."
        )
    if discrete and int(action_space.n) < 1:
        raise ValueError(f"a discrete action space needs n >= 1, got {action_space.n}")
    return want


def _orthogonal_linear(layer: eqx.nn.Linear, gain: float, key) -> eqx.nn.Linear:
    init = jax.nn.initializers.orthogonal(gain)
    weight = init(key, layer.weight.shape, layer.weight.dtype)
    layer = eqx.tree_at(lambda m: m.weight, layer, weight)
    if layer.bias is not None:
        layer = eqx.tree_at(lambda m: m.bias, layer, jnp.zeros_like(layer.bias))
    return layer


def _orthogonal_init(torso, policy, value, key):
    """The RTU paper's released PPO initialisation (and CleanRL's): orthogonal
    weights, zero biases, gain sqrt(2) for hidden layers, 0.01 for the policy's
    output layer and 1 for the value's. ``policy`` or ``value`` may be ``None``
    (a network with one head)."""
    k_torso, k_pi, k_v = jax.random.split(key, 3)

    def mlp(layers, last_gain, key):
        keys = jax.random.split(key, len(layers))
        gains = [math.sqrt(2.0)] * len(layers)
        if last_gain is not None:
            gains[-1] = last_gain
        return tuple(
            _orthogonal_linear(layer, g, k)
            for layer, g, k in zip(layers, gains, keys, strict=True)
        )

    if torso.layers:
        torso = eqx.tree_at(lambda t: t.layers, torso, mlp(torso.layers, None, k_torso))
    if policy is not None:
        policy = eqx.tree_at(
            lambda p: p.mlp.layers, policy, mlp(policy.mlp.layers, 0.01, k_pi)
        )
    if value is not None:
        value = eqx.tree_at(
            lambda v: v.mlp.layers, value, mlp(value.mlp.layers, 1.0, k_v)
        )
    return torso, policy, value


def sparse_linear(
    layer: eqx.nn.Linear, sparsity: float, key: PRNGKeyArray
) -> eqx.nn.Linear:
    """``layer`` with Elsayed et al. 2024's sparse initialisation.

    The weight ``(fan_out, fan_in)`` is drawn uniform in ``+-sqrt(1 / fan_in)``,
    then in each output row ``ceil(sparsity * fan_in)`` inputs, drawn at random
    without replacement, are set to 0; the bias is 0 (their ``sparse_init``
    with ``type='uniform'`` and ``initialize_weights``).

    Args:
        layer: a dense layer.
        sparsity: the fraction of each row's inputs set to 0, in ``[0, 1)``.
        key: PRNG key.
    """
    fan_out, fan_in = layer.weight.shape
    k_w, k_zero = jax.random.split(key)
    bound = math.sqrt(1.0 / fan_in)
    weight = jax.random.uniform(
        k_w, (fan_out, fan_in), layer.weight.dtype, -bound, bound
    )
    num_zeros = math.ceil(sparsity * fan_in)  # their int(math.ceil(...))
    order = jax.vmap(lambda k: jax.random.permutation(k, fan_in))(
        jax.random.split(k_zero, fan_out)
    )
    rows = jnp.arange(fan_out)[:, None]
    weight = weight.at[rows, order[:, :num_zeros]].set(0.0)
    layer = eqx.tree_at(lambda m: m.weight, layer, weight)
    if layer.bias is not None:
        layer = eqx.tree_at(lambda m: m.bias, layer, jnp.zeros_like(layer.bias))
    return layer


def _sparse_init(torso, policy, value, sparsity: float, key):
    """:func:`sparse_linear` on every dense layer of an MLP torso and the heads
    (their ``self.apply(initialize_weights)`` on the actor and the critic);
    an IMPALA torso keeps its own initialisation."""
    k_torso, k_pi, k_v = jax.random.split(key, 3)

    def mlp(layers, key):
        keys = jax.random.split(key, len(layers))
        return tuple(
            sparse_linear(layer, sparsity, k)
            for layer, k in zip(layers, keys, strict=True)
        )

    if isinstance(torso, MLPTorso) and torso.layers:
        torso = eqx.tree_at(lambda t: t.layers, torso, mlp(torso.layers, k_torso))
    if policy is not None:
        policy = eqx.tree_at(
            lambda p: p.mlp.layers, policy, mlp(policy.mlp.layers, k_pi)
        )
    if value is not None:
        value = eqx.tree_at(lambda v: v.mlp.layers, value, mlp(value.mlp.layers, k_v))
    return torso, policy, value


def _init_dense(
    torso, policy, value, init: str, sparsity: float | None, key
) -> tuple[Any, Any, Any]:
    """The torso's and the heads' dense layers re-initialised as asked: sparse
    (``sparsity`` given) or orthogonal (``init``), each from a key of its own so
    that the default initialisation is unchanged."""
    if sparsity is not None:
        return _sparse_init(torso, policy, value, sparsity, jax.random.fold_in(key, 2))
    if init == "orthogonal":
        return _orthogonal_init(torso, policy, value, jax.random.fold_in(key, 1))
    return torso, policy, value


def _torso_and_core(
    config: NetworkConfig,
    obs_shape: tuple[int, ...],
    k_torso: PRNGKeyArray,
    k_core: PRNGKeyArray,
    cell: rc.AbstractCell | None,
    layer_norm: bool,
) -> tuple[MLPTorso | ImpalaTorso, rc.AbstractCell | None, int]:
    """The torso and the core ``config`` describes, and the heads' input width."""
    torso: MLPTorso | ImpalaTorso
    if config.torso.kind == "impala":
        torso = ImpalaTorso(tuple(obs_shape), config.torso, key=k_torso)
    else:
        size = math.prod(obs_shape)
        if size < 1:
            raise ValueError(f"observation shape {obs_shape} has no entries.")
        torso = MLPTorso(size, config.torso, key=k_torso, layer_norm=layer_norm)
    core_in = torso.out_size + int(config.torso.reward_input)
    core = make_core(config.core, core_in, key=k_core, cell=cell)
    return torso, core, core_in if core is None else core.output_size


def _policy_head(
    config: HeadConfig, feat: int, action_space: Any, key, layer_norm: bool
) -> AbstractPolicyHead:
    dist = check_action_space(config, action_space)
    if dist == "categorical":
        return CategoricalHead(
            feat, action_dim(action_space), config, key=key, layer_norm=layer_norm
        )
    return GaussianHead(
        feat, tuple(action_space.shape), config, key=key, layer_norm=layer_norm
    )


class AbstractRecurrentNet(eqx.Module):
    """A network around a recurrent core (any rtrl-cells cell, or none).

    The wiring every network shares: the episode-start carry, running the core
    with the configured gradient method (or the identity without a core), one
    step with the method's step method, and the carry a learner keeps per step.
    Subclasses add what goes in and out (:class:`ActorCriticNet`,
    :class:`~rtrl_agents.PredictionNet`).
    """

    core: eqx.AbstractVar[rc.AbstractCell | None]
    method: eqx.AbstractVar[str]

    def initial_carry(self) -> Any:
        """The carry of one stream at the start (a dummy scalar without a core).

        It holds RTRL traces only where :attr:`method` advances them: a core
        trained by truncated BPTT carries its state alone
        (``init_carry().for_method(method)``), not zeros that are never read.
        """
        if self.core is None:
            return jnp.zeros((), _float_dtype())
        return self.core.init_carry().for_method(self.method)

    def stored_carry(self, carry: Any, method: Any = None) -> Any:
        """What a learner that re-runs from ``carry`` with ``method`` (default
        :attr:`method`) needs of it: the state, and the RTRL traces only for
        methods that use them (``carry.for_method``); ``method="bptt"`` keeps
        the state alone. Learners that keep a carry per step keep this."""
        if self.core is None:
            return carry
        return carry.for_method(self.method if method is None else method)

    def run_core(
        self, carry: Any, xs: Array, resets: Bool[Array, " T"], method: Any = None
    ) -> tuple[Array, Any]:
        """The core over ``T`` steps: ``(hs (T, F), carry_T)``; without a core the
        inputs pass through.

        Args:
            carry: one stream's carry.
            xs: the core's inputs ``(T, F_in)``.
            resets: ``(T,)`` bool.
            method: the cell's unroll method (a name or an
                ``rtrl_cells.GradientMethod``); default: :attr:`method`.
        """
        if self.core is None:
            return xs, carry
        method = rc.method(self.method) if method is None else method
        return self.core.unroll(carry, xs, resets, method=method)

    def step_method(self) -> rc.GradientMethod:
        """How one step is taken: online RTRL for RTRL methods, the state alone
        for truncated BPTT (``rtrl_cells.GradientMethod.step_method``)."""
        return rc.method(self.method).step_method


class AbstractTorsoNet(AbstractRecurrentNet):
    """Torso -> (clipped previous reward) -> recurrent core: the features the
    heads read. What :class:`ActorCriticNet`, :class:`PolicyNet` and
    :class:`ValueNet` share."""

    torso: eqx.AbstractVar[MLPTorso | ImpalaTorso]
    reward_input: eqx.AbstractVar[bool]
    reward_clip: eqx.AbstractVar[float | None]
    observation_shape: eqx.AbstractVar[tuple[int, ...]]

    def _features(self, obs: Array, reward: Array) -> Array:
        feats = self.torso.frames(obs)
        if self.reward_input:
            r = reward.astype(feats.dtype)
            if self.reward_clip is not None:
                r = jnp.clip(r, -self.reward_clip, self.reward_clip)
            feats = jnp.concatenate([feats, r[:, None]], axis=-1)
        return feats

    def core_features(
        self,
        carry: Any,
        obs: Array,
        reward: Float[Array, " T"],
        first: Bool[Array, " T"],
        method: Any = None,
    ) -> tuple[Array, Any]:
        """The core's outputs over ``T`` steps of one stream: ``(hs (T, F),
        carry_T)`` (arguments as :meth:`ActorCriticNet.unroll`).

        Raises:
            ValueError: observations of another shape than the network's.
        """
        if tuple(obs.shape[1:]) != self.observation_shape:
            raise ValueError(
                f"the network was built for observations of shape "
                f"{self.observation_shape}, got {tuple(obs.shape[1:])}: build the "
                "agent from this environment's spec."
            )
        return self.run_core(carry, self._features(obs, reward), first, method=method)

    def trace_inputs(self, obs: Array, reward: Float[Array, " T"]) -> Array | None:
        """The core's inputs over ``T`` steps of one stream ``(T, F)``, as
        constants (``None`` without a core): what :meth:`states_before`
        re-runs the core on. Computed with the parameters that acted, they are
        the inputs the actor's traces were advanced with."""
        if self.core is None:
            return None
        return jax.lax.stop_gradient(self._features(obs, reward))

    def states_before(
        self, carry_0: Any, inputs: Array, first: Bool[Array, " T"]
    ) -> Any:
        """The state-only carry before each step of one stream's trajectory
        (leading axis ``T``, as :meth:`stored_carry` with ``"bptt"`` keeps
        them), differentiable with respect to the core's parameters through
        the whole history: its Jacobian is the RTRL traces, so a VJP with the
        stored states' adjoints is the stale-trace term ``sum_t lambda_t .
        E_{t-1}`` (``rtrl_cells.AbstractCell.states_before``).

        Args:
            carry_0: the carry before the trajectory, with its traces.
            inputs: :meth:`trace_inputs` of the trajectory, ``(T, F)``.
            first: ``(T,)`` the resets.

        Raises:
            ValueError: (one line) a network without a recurrent core.
        """
        if self.core is None:
            raise ValueError("states_before needs a recurrent core.")
        states = self.core.states_before(carry_0, inputs, first)
        return rc.RTRLCarry(states, ())

    @abc.abstractmethod
    def unroll(
        self,
        carry: Any,
        obs: Array,
        reward: Float[Array, " T"],
        first: Bool[Array, " T"],
        method: Any = None,
    ) -> tuple[Any, ...]:
        """The heads' outputs over ``T`` steps, each with a leading time axis,
        then ``carry_T`` (see :meth:`ActorCriticNet.unroll`)."""

    def step(
        self,
        carry: Any,
        obs_t: Array,
        reward_t: ArrayLike,
        first_t: ArrayLike,
        method: Any = None,
    ) -> tuple[Any, ...]:
        """One actor step: :meth:`unroll`'s outputs at one step, then the new
        carry (:class:`ActorCriticNet`: ``(policy_params_t, v_t, carry)``;
        :class:`PolicyNet`: ``(policy_params_t, carry)``; :class:`ValueNet`:
        ``(v_t, carry)``).

        RTRL cores advance their traces (online RTRL); TBPTT cores only their
        state (:meth:`step_method`). ``method`` overrides it
        (``rtrl_cells.BPTT``: state only).
        """
        *outputs, carry = self.unroll(
            carry,
            obs_t[None],
            jnp.asarray(reward_t)[None],
            jnp.asarray(first_t)[None],
            method=self.step_method() if method is None else method,
        )
        return (*(y[0] for y in outputs), carry)


class ActorCriticNet(AbstractTorsoNet):
    """Torso -> (clipped previous reward) -> recurrent core -> policy, value.

    One stream, unbatched. ``core`` is any rtrl-cells cell, or ``None`` for the
    feedforward baseline (whose carry is a dummy scalar). The gradient method is
    a static field: a name of ``rtrl_cells.METHODS`` (``"rtrl"``, ``"rtrl-online"``
    or ``"tbptt"`` in the seeds' configurations).
    """

    torso: MLPTorso | ImpalaTorso
    core: rc.AbstractCell | None
    policy: AbstractPolicyHead
    value: ValueHead
    method: str = eqx.field(static=True)
    reward_input: bool = eqx.field(static=True)
    reward_clip: float | None = eqx.field(static=True)
    observation_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        config: NetworkConfig,
        obs_shape: tuple[int, ...],
        action_space: Any,
        *,
        key: PRNGKeyArray,
        reward_clip: float | None = 1.0,
        cell: rc.AbstractCell | None = None,
        layer_norm: bool = False,
        sparsity: float | None = None,
    ):
        """Builds the network.

        Args:
            config: the network configuration.
            obs_shape: one stream's observation shape.
            action_space: ``Discrete``-like (``n``) or ``Box``-like (``shape``).
            key: PRNG key for the parameters.
            reward_clip: clip of the reward input (``None``: unclipped).
            cell: an rtrl-cells cell to use instead of building the one
                ``config.core`` names; it must be of that kind and size (see
                :func:`make_core`) and take the torso's output.
            layer_norm: a parameter-free :func:`layer_norm` after every hidden
                dense layer of an MLP torso and the heads, before the activation.
            sparsity: if given, :func:`sparse_linear` initialisation of those
                dense layers (instead of ``config.init``).

        Raises:
            ValueError: (one line) an action space the heads cannot serve, an
                observation shape the torso cannot take, or a cell that
                contradicts the config.
        """
        check_action_space(config.heads, action_space)
        self.observation_shape = tuple(int(d) for d in obs_shape)
        k_torso, k_core, k_pi, k_v = jax.random.split(key, 4)
        torso, self.core, feat = _torso_and_core(
            config, obs_shape, k_torso, k_core, cell, layer_norm
        )
        policy = _policy_head(config.heads, feat, action_space, k_pi, layer_norm)
        value = ValueHead(feat, config.heads, key=k_v, layer_norm=layer_norm)
        self.torso, policy, value = _init_dense(
            torso, policy, value, config.init, sparsity, key
        )
        self.policy, self.value = policy, value
        self.method = config.core.method
        self.reward_input = config.torso.reward_input
        self.reward_clip = reward_clip

    def unroll(
        self,
        carry: Any,
        obs: Array,
        reward: Float[Array, " T"],
        first: Bool[Array, " T"],
        method: Any = None,
    ) -> tuple[Array, Float[Array, " T"], Any]:
        """Runs ``T`` steps of one stream from ``carry``.

        Args:
            carry: from :meth:`initial_carry` or an earlier call.
            obs: observations ``(T, *obs_shape)``.
            reward: the reward that arrived with each observation, ``(T,)``.
            first: ``first`` flags ``(T,)`` (the cell's resets).
            method: the cell's unroll method (a name or an
                ``rtrl_cells.GradientMethod``); default: ``self.method``.

        Returns:
            ``(policy_params (T, P), values (T,), carry_T)``.

        Raises:
            ValueError: observations of another shape than the network's.
        """
        hs, carry_T = self.core_features(carry, obs, reward, first, method=method)
        return jax.vmap(self.policy)(hs), jax.vmap(self.value)(hs), carry_T


class PolicyNet(AbstractTorsoNet):
    """Torso -> (clipped previous reward) -> recurrent core -> policy: the
    actor of :class:`SeparateActorCriticNet` (one stream, unbatched)."""

    torso: MLPTorso | ImpalaTorso
    core: rc.AbstractCell | None
    policy: AbstractPolicyHead
    method: str = eqx.field(static=True)
    reward_input: bool = eqx.field(static=True)
    reward_clip: float | None = eqx.field(static=True)
    observation_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        config: NetworkConfig,
        obs_shape: tuple[int, ...],
        action_space: Any,
        *,
        key: PRNGKeyArray,
        reward_clip: float | None = 1.0,
        cell: rc.AbstractCell | None = None,
        layer_norm: bool = False,
        sparsity: float | None = None,
    ):
        """Builds the network (arguments as :class:`ActorCriticNet`)."""
        check_action_space(config.heads, action_space)
        self.observation_shape = tuple(int(d) for d in obs_shape)
        k_torso, k_core, k_pi, _ = jax.random.split(key, 4)
        torso, self.core, feat = _torso_and_core(
            config, obs_shape, k_torso, k_core, cell, layer_norm
        )
        policy = _policy_head(config.heads, feat, action_space, k_pi, layer_norm)
        self.torso, policy, _ = _init_dense(
            torso, policy, None, config.init, sparsity, key
        )
        self.policy = policy
        self.method = config.core.method
        self.reward_input = config.torso.reward_input
        self.reward_clip = reward_clip

    def unroll(
        self,
        carry: Any,
        obs: Array,
        reward: Float[Array, " T"],
        first: Bool[Array, " T"],
        method: Any = None,
    ) -> tuple[Array, Any]:
        """``(policy_params (T, P), carry_T)`` over ``T`` steps (arguments as
        :meth:`ActorCriticNet.unroll`)."""
        hs, carry_T = self.core_features(carry, obs, reward, first, method=method)
        return jax.vmap(self.policy)(hs), carry_T


class ValueNet(AbstractTorsoNet):
    """Torso -> (clipped previous reward) -> recurrent core -> value: the
    critic of :class:`SeparateActorCriticNet` (one stream, unbatched)."""

    torso: MLPTorso | ImpalaTorso
    core: rc.AbstractCell | None
    value: ValueHead
    method: str = eqx.field(static=True)
    reward_input: bool = eqx.field(static=True)
    reward_clip: float | None = eqx.field(static=True)
    observation_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        config: NetworkConfig,
        obs_shape: tuple[int, ...],
        *,
        key: PRNGKeyArray,
        reward_clip: float | None = 1.0,
        cell: rc.AbstractCell | None = None,
        layer_norm: bool = False,
        sparsity: float | None = None,
    ):
        """Builds the network (arguments as :class:`ActorCriticNet`)."""
        self.observation_shape = tuple(int(d) for d in obs_shape)
        k_torso, k_core, _, k_v = jax.random.split(key, 4)
        torso, self.core, feat = _torso_and_core(
            config, obs_shape, k_torso, k_core, cell, layer_norm
        )
        value = ValueHead(feat, config.heads, key=k_v, layer_norm=layer_norm)
        self.torso, _, value = _init_dense(
            torso, None, value, config.init, sparsity, key
        )
        self.value = value
        self.method = config.core.method
        self.reward_input = config.torso.reward_input
        self.reward_clip = reward_clip

    def unroll(
        self,
        carry: Any,
        obs: Array,
        reward: Float[Array, " T"],
        first: Bool[Array, " T"],
        method: Any = None,
    ) -> tuple[Float[Array, " T"], Any]:
        """``(values (T,), carry_T)`` over ``T`` steps (arguments as
        :meth:`ActorCriticNet.unroll`)."""
        hs, carry_T = self.core_features(carry, obs, reward, first, method=method)
        return jax.vmap(self.value)(hs), carry_T


class ActorCriticCarry(NamedTuple):
    """The carry of a :class:`SeparateActorCriticNet`: each network's own."""

    actor: Any
    """The actor's core carry (state and RTRL traces)."""
    critic: Any
    """The critic's core carry."""


class SeparateActorCriticNet(eqx.Module):
    """Separate actor and critic networks, each with its own torso and core.

    Elsayed et al. 2024's stream AC(lambda) (their ``Actor`` and ``Critic``)
    with a recurrent core in each: ``actor`` is a :class:`PolicyNet`, ``critic``
    a :class:`ValueNet`, built from the same :class:`NetworkConfig` with keys of
    their own. No parameter is shared, so no gradient of one reaches the
    other. The interface is :class:`ActorCriticNet`'s (``step``, ``unroll``,
    ``policy``, ``initial_carry``, ...); the carry is an
    :class:`ActorCriticCarry`. One stream, unbatched.
    """

    actor: PolicyNet
    critic: ValueNet

    def __init__(
        self,
        config: NetworkConfig,
        obs_shape: tuple[int, ...],
        action_space: Any,
        *,
        key: PRNGKeyArray,
        reward_clip: float | None = 1.0,
        cell: rc.AbstractCell | None = None,
        layer_norm: bool = False,
        sparsity: float | None = None,
    ):
        """Builds both networks (arguments as :class:`ActorCriticNet`; a given
        ``cell`` starts both cores, each then learns on its own)."""
        k_pi, k_v = jax.random.split(key)
        options = {
            "reward_clip": reward_clip,
            "cell": cell,
            "layer_norm": layer_norm,
            "sparsity": sparsity,
        }
        self.actor = PolicyNet(config, obs_shape, action_space, key=k_pi, **options)
        self.critic = ValueNet(config, obs_shape, key=k_v, **options)

    @property
    def policy(self) -> AbstractPolicyHead:
        """The actor's policy head (its distribution functions)."""
        return self.actor.policy

    @property
    def core(self) -> rc.AbstractCell | None:
        """The actor's core (the critic's, ``critic.core``, is of the same kind)."""
        return self.actor.core

    @property
    def method(self) -> str:
        """The cores' gradient method."""
        return self.actor.method

    def initial_carry(self) -> ActorCriticCarry:
        """Both networks' carries at the start of an episode."""
        return ActorCriticCarry(self.actor.initial_carry(), self.critic.initial_carry())

    def stored_carry(
        self, carry: ActorCriticCarry, method: Any = None
    ) -> ActorCriticCarry:
        """What a learner re-running from ``carry`` needs of it, per network
        (:meth:`AbstractRecurrentNet.stored_carry`)."""
        return ActorCriticCarry(
            self.actor.stored_carry(carry.actor, method),
            self.critic.stored_carry(carry.critic, method),
        )

    def step_method(self) -> rc.GradientMethod:
        """How one step is taken (:meth:`AbstractRecurrentNet.step_method`)."""
        return self.actor.step_method()

    def unroll(
        self,
        carry: ActorCriticCarry,
        obs: Array,
        reward: Float[Array, " T"],
        first: Bool[Array, " T"],
        method: Any = None,
    ) -> tuple[Array, Float[Array, " T"], ActorCriticCarry]:
        """``(policy_params (T, P), values (T,), carry_T)``, as
        :meth:`ActorCriticNet.unroll`, each network from its own carry."""
        p, c_pi = self.actor.unroll(carry.actor, obs, reward, first, method=method)
        v, c_v = self.critic.unroll(carry.critic, obs, reward, first, method=method)
        return p, v, ActorCriticCarry(c_pi, c_v)

    def step(
        self,
        carry: ActorCriticCarry,
        obs_t: Array,
        reward_t: Array,
        first_t: Array,
        method: Any = None,
    ) -> tuple[Array, Array, ActorCriticCarry]:
        """One actor step: ``(policy_params_t, v_t, carry)`` (as
        :meth:`ActorCriticNet.step`)."""
        p, c_pi = self.actor.step(carry.actor, obs_t, reward_t, first_t, method)
        v, c_v = self.critic.step(carry.critic, obs_t, reward_t, first_t, method)
        return p, v, ActorCriticCarry(c_pi, c_v)


def _float_dtype():
    return jnp.zeros(()).dtype


def core_params(net: ActorCriticNet) -> Any:
    """The core's parameters (a filter spec for comparisons and diagnostics)."""
    return eqx.filter(net.core, eqx.is_inexact_array)
