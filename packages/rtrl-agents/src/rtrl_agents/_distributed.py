"""Any agent on Ray: actors produce rollouts, one JAX learner updates.

The seed ran 48 actors and one GPU learner over its own gRPC actor pool. Here
the actors are Ray actors, so a run scales from a laptop to a cluster by
changing the address:

* Each Ray actor (:class:`RolloutWorker`) owns an :class:`~rtrl_agents.Actor`:
  one batch of environments (host simulators such as envpool, or a jitted JAX
  environment), a copy of the parameters and the core carries with their RTRL
  traces. It advances its own traces (``DistributedConfig.actor_traces``) and
  ships ``(trajectory, carry before the rollout, behaviour policy's outputs)``,
  i.e. a :class:`~rtrl_agents.Trajectory`, with the parameter version it used.
* One learner (this process; JAX on its default device, the GPU when there is
  one) waits on a bounded set of in-flight rollout requests (the queue: at most
  ``max_in_flight``), concatenates ``rollouts_per_update`` of them and applies the
  single-machine agent's ``update`` to them (R2AC: exact RTRL from each
  rollout's shipped traces, V-trace correcting the actors' lag). An agent that
  keeps state per stream between updates (``Agent.per_stream_state``: PPO's
  reward scaler, the streaming agent's eligibility traces) gets one rollout of
  every actor per update, in the actors' order, so that stream ``i`` of every
  batch is the same environment stream.
* Every ``publish_every`` updates the learner puts the state's arrays (the
  parameters, and what acting reads, such as PPO's observation statistics) into
  Ray's object store and hands the reference to every actor; an actor picks up
  the newest between rollouts.

Failure handling: a dead actor is replaced by a fresh one (new environments and
carries, a new seed) and the run goes on, up to ``max_actor_restarts``
replacements; the learner waits at most ``queue_timeout_s`` for a rollout, then
stops with a message; Ctrl-C (``KeyboardInterrupt``) writes a final checkpoint
and shuts the actors down. Logging, checkpoints and resume are those of
:func:`~rtrl_agents.train` on a host environment: the same driver
(``_driver.train_rollouts``) runs both, fed by an :class:`~rtrl_agents.Actor`
there and by the Ray actors here.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import types
import uuid
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import rtrl_cells as rc

from ._actor import Actor, concat_rollouts
from ._config import LoopConfig, PPOConfig
from ._core import AbstractAgentState, Agent, Trajectory
from ._driver import (
    Session,
    TrainResult,
    check_checkpoint_dir,
    host_run_state,
    train_rollouts,
)
from ._logging import MetricWriter
from ._loop import TRACE_UPDATES, _raw_key, no_state_only_step
from ._make import AgentConfig, make_agent
from ._ppo import recomputes_stale_traces


def _import_ray():
    try:
        import ray  # pyright: ignore[reportMissingImports]
    except ImportError as e:
        raise ImportError(
            "distributed training needs Ray: pip install 'rtrl-agents[ray]'"
        ) from e
    return ray


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """How a distributed run lays out its actors and its queue."""

    num_actors: int = 2
    """Ray actors, each with its own batch of environments."""

    rollouts_per_update: int = 1
    """Rollouts (from any actors) concatenated into one learner batch; for an
    agent with per-stream state it must equal ``num_actors`` (one rollout of
    each actor per update, in order)."""

    max_in_flight: int | None = None
    """The bounded rollout queue: rollout requests outstanding at once, spread
    over the actors (``None``: two per actor, so an actor always has its next
    rollout queued while the learner works)."""

    publish_every: int = 1
    """K: put the parameters into the object store every K updates."""

    actor_traces: str = "online"
    """How actors advance their RTRL traces: ``"online"`` (per step) or
    ``"chunked"`` (state per step, traces once at the rollout's end)."""

    queue_timeout_s: float = 300.0
    """Longest wait for a rollout before the run stops with an error."""

    start_timeout_s: float = 600.0
    """Longest wait for the first actor to start (imports, environments)."""

    max_actor_restarts: int = 10
    """Dead actors replaced before the run gives up."""

    actor_num_cpus: float = 1.0
    """CPUs Ray reserves for each actor."""

    actor_num_gpus: float = 0.0
    """GPUs Ray reserves for each actor (0: actors act on CPU)."""

    def __post_init__(self) -> None:
        for name in ("num_actors", "rollouts_per_update", "publish_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"DistributedConfig.{name} must be a positive int, got {value!r}."
                )
        if self.max_in_flight is not None and (
            not isinstance(self.max_in_flight, int)
            or self.max_in_flight < self.num_actors
        ):
            raise ValueError(
                f"DistributedConfig.max_in_flight must be an int >= num_actors "
                f"({self.num_actors}), got {self.max_in_flight!r}."
            )
        if self.actor_traces not in TRACE_UPDATES:
            raise ValueError(
                f"DistributedConfig.actor_traces must be 'online' or 'chunked', "
                f"got {self.actor_traces!r}."
            )
        for name in ("queue_timeout_s", "start_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"DistributedConfig.{name} must be > 0, "
                    f"got {getattr(self, name)!r}."
                )
        if self.max_actor_restarts < 0:
            raise ValueError(
                "DistributedConfig.max_actor_restarts must be >= 0, "
                f"got {self.max_actor_restarts!r}."
            )
        if self.actor_num_cpus < 0 or self.actor_num_gpus < 0:
            raise ValueError("DistributedConfig actor resources must be >= 0.")

    @property
    def in_flight(self) -> int:
        """The queue bound actually used."""
        return self.max_in_flight or 2 * self.num_actors


_PARAMS_TIMEOUT_S = 600


def host_params(state: AbstractAgentState) -> Any:
    """The state's arrays as host numpy arrays (what is shipped to actors: the
    parameters and everything else acting may read, e.g. PPO's observation
    statistics)."""
    return jax.device_get(eqx.filter(state, eqx.is_array))


class RolloutWorker:
    """What one Ray actor runs: an :class:`Actor` plus the state it acts with.

    Plain Python (Ray wraps it with ``ray.remote``), so it can be used and tested
    without a cluster.

    Args:
        config: the agent's configuration (the actor makes its own agent from
            it and its environment's spec, :func:`make_agent`).
        env_fn: ``env_fn(seed)`` builds this actor's batch of environments.
        seed: the actor's seed (environments and action sampling).
        trace_update: how the actor advances RTRL traces, ``"online"`` or
            ``"chunked"`` (``Actor``'s ``trace_update``).
    """

    def __init__(
        self,
        config: AgentConfig,
        env_fn: Callable[[int], Any],
        seed: int,
        trace_update: str = "online",
    ):
        self.env = env_fn(seed)
        self.agent = make_agent(config, self.env.spec)
        key = jax.random.PRNGKey(seed)
        k_init, k_env, k_act = jax.random.split(key, 3)
        state = self.agent.init(k_init)
        self._static = eqx.filter(state, eqx.is_array, inverse=True)
        self._state = state
        self._version = -1
        self._latest: tuple[int, Any] | None = None
        self._has_params = threading.Event()
        self._lock = threading.Lock()
        # Made at the first rollout: the learner checks the layout (e.g. chunked
        # traces for an agent that cannot use them) after asking for the spec,
        # and says so in one line, before any actor acts.
        self._make_actor = lambda: Actor(
            self.agent, self.env, k_env, k_act, state, trace_update=trace_update
        )
        self._actor: Actor | None = None

    @property
    def actor(self) -> Actor:
        """The :class:`Actor` (made on first use)."""
        if self._actor is None:
            self._actor = self._make_actor()
        return self._actor

    def spec(self) -> Any:
        """The environment's spec (the learner builds its agent from it)."""
        return self.env.spec

    def set_params(self, version: int, params: Any) -> None:
        """Stores the newest state arrays; the next rollout picks them up."""
        self._latest = (int(version), params)
        self._has_params.set()

    def rollout(self) -> tuple[int, Any, dict[str, float]]:
        """One rollout with the newest state.

        Returns:
            ``(version, trajectory, stats)``: the version acted with, the
            trajectory as host arrays and the episodes that ended.
        """
        # On Ray, set_params runs in its own thread and may land after the first
        # rollout request; wait for it.
        if not self._has_params.wait(timeout=_PARAMS_TIMEOUT_S):
            raise RuntimeError(
                f"no parameters arrived within {_PARAMS_TIMEOUT_S} s: call "
                "set_params before rollout."
            )
        with self._lock:
            latest = self._latest
            assert latest is not None
            if latest[0] != self._version:
                arrays = jax.tree.map(jnp.asarray, latest[1])
                self._state = eqx.combine(arrays, self._static)
                self._version = latest[0]
            batch, stats = self.actor.rollout(self._state)
            batch = jax.device_get(batch)
            return self._version, batch, stats


def _ray_worker_class(ray: Any) -> Any:
    """:class:`RolloutWorker` as a Ray actor class: rollouts run one at a time,
    ``set_params`` in its own thread, so new parameters land during a rollout."""

    @ray.remote(concurrency_groups={"params": 1})
    class RayRolloutWorker(RolloutWorker):
        @ray.method(concurrency_group="params")
        def set_params(self, version: int, params: Any) -> None:
            super().set_params(version, params)

    return RayRolloutWorker


class _ActorPool:
    """The Ray actors, their in-flight rollout requests (the bounded queue) and
    their replacement when they fail."""

    def __init__(self, ray, config, env_fn, dist: DistributedConfig, seed, name):
        self.ray, self.config, self.env_fn = ray, config, env_fn
        self.dist, self.seed, self.name = dist, seed, name
        self._remote = _ray_worker_class(ray)
        self.handles: list[Any] = []
        self.incarnations = [0] * dist.num_actors
        self.restarts = 0
        self._pending: dict[Any, tuple[int, int]] = {}
        self._params: tuple[int, Any] | None = None
        for i in range(dist.num_actors):
            self.handles.append(self._spawn(i))

    def _spawn(self, i: int) -> Any:
        inc = self.incarnations[i]
        return self._remote.options(
            name=actor_name(self.name, i, inc),
            num_cpus=self.dist.actor_num_cpus,
            num_gpus=self.dist.actor_num_gpus,
            max_restarts=0,  # replaced by the pool instead, with a new seed
        ).remote(
            self.config,
            self.env_fn,
            self.seed * 100_003 + i * 1_009 + inc,
            self.dist.actor_traces,
        )

    def spec(self) -> Any:
        """The first actor's environment spec."""
        ref = self.handles[0].spec.remote()
        try:
            return self.ray.get(ref, timeout=self.dist.start_timeout_s)
        except self.ray.exceptions.GetTimeoutError as e:
            raise TimeoutError(
                f"the first actor did not start within {self.dist.start_timeout_s:g}"
                " s: the cluster may lack the resources the actors ask for "
                "(DistributedConfig.actor_num_cpus / actor_num_gpus); see "
                "`ray status`."
            ) from e

    def publish(self, version: int, state: AbstractAgentState) -> None:
        """Puts the state's arrays into the object store and tells every actor."""
        self._params = (version, self.ray.put(host_params(state)))
        for handle in self.handles:
            handle.set_params.remote(*self._params)

    def start(self) -> None:
        """Queues the first ``in_flight`` rollout requests, round robin."""
        for j in range(self.dist.in_flight):
            self.submit(j % self.dist.num_actors)

    def submit(self, i: int) -> None:
        """Queues one rollout request to actor ``i``."""
        ref = self.handles[i].rollout.remote()
        self._pending[ref] = (i, self.incarnations[i])

    def _replace(self, i: int, error: Exception) -> None:
        self.restarts += 1
        if self.restarts > self.dist.max_actor_restarts:
            first_line = (str(error).strip().splitlines() or [""])[0]
            raise RuntimeError(
                f"actor {i} failed ({type(error).__name__}: {first_line}) and all "
                f"{self.dist.max_actor_restarts} replacements are used up; see the "
                "actor logs (`ray logs`) for the cause."
            ) from error
        self.ray.kill(self.handles[i], no_restart=True)
        self.incarnations[i] += 1
        self.handles[i] = self._spawn(i)
        if self._params is not None:
            self.handles[i].set_params.remote(*self._params)
        for _ in range(self.dist.in_flight // self.dist.num_actors):
            self.submit(i)

    def next_rollout(
        self, done: int, resubmit: bool = True
    ) -> tuple[int, int, Any, dict[str, float]]:
        """The next finished rollout, ``(actor, version, trajectory, stats)``;
        with ``resubmit``, its actor gets its next request at once (else the
        caller submits it, :meth:`submit`). Failed actors are replaced on the
        way."""
        ex = self.ray.exceptions
        while True:
            ready, _ = self.ray.wait(
                list(self._pending), num_returns=1, timeout=self.dist.queue_timeout_s
            )
            if not ready:
                raise TimeoutError(
                    f"no rollout arrived within {self.dist.queue_timeout_s:g} s from "
                    f"{self.dist.num_actors} actors (after {done} updates): check "
                    "`ray status` and the actor logs, or raise "
                    "DistributedConfig.queue_timeout_s."
                )
            i, incarnation = self._pending.pop(ready[0])
            try:
                version, batch, stats = self.ray.get(ready[0])
            except (ex.RayActorError, ex.RayTaskError) as e:
                if incarnation == self.incarnations[i]:
                    self._replace(i, e)
                continue
            if resubmit:
                self.submit(i)
            return i, version, batch, stats

    def shutdown(self) -> None:
        """Kills every actor."""
        for handle in self.handles:
            self.ray.kill(handle, no_restart=True)
        self.handles = []


class RaySource:
    """Rollouts of the Ray actors for the driver's rollout loop (see
    ``_driver.RolloutSource``): ``rollouts_per_update`` of them per batch, in
    the actors' order for agents with per-stream state."""

    def __init__(
        self,
        pool: _ActorPool,
        dist: DistributedConfig,
        frames_per_update: int,
        key: Any,
        num_envs: int,
        ordered: bool,
    ):
        self.pool, self.dist, self.frames_per_update = pool, dist, frames_per_update
        self.key, self.ordered = key, ordered
        self._zeros = np.zeros(num_envs)
        self._waiting: dict[int, list[tuple[int, Any, dict]]] = {}

    def start(self, state: Any, done: int) -> None:
        self.pool.publish(done, state)
        self.pool.start()

    def _rollouts(self, done: int) -> list[tuple[int, Any, dict]]:
        if not self.ordered:
            return [
                self.pool.next_rollout(done)[1:]
                for _ in range(self.dist.rollouts_per_update)
            ]
        # One of each actor, in order; an actor's later rollouts wait their turn.
        # An actor gets its next request when one of its rollouts is used, not
        # when it arrives: its requests and waiting rollouts stay within its
        # share of the queue, so a slow actor (one being replaced) does not let
        # the others pile up rollouts of old parameters.
        n = self.dist.num_actors
        while any(not self._waiting.get(i) for i in range(n)):
            i, version, batch, stats = self.pool.next_rollout(done, resubmit=False)
            self._waiting.setdefault(i, []).append((version, batch, stats))
        got = [self._waiting[i].pop(0) for i in range(n)]
        for i in range(n):
            self.pool.submit(i)
        return got

    def next_batch(self, state: Any, done: int) -> tuple[Trajectory, dict]:
        del state
        got = self._rollouts(done)
        stats: dict[str, float] = dict.fromkeys(
            ("episode_return_sum", "episode_length_sum", "episodes"), 0.0
        )
        for _, _, st in got:
            stats = {k: v + st[k] for k, v in stats.items()}
        batch = concat_rollouts([jax.tree.map(jnp.asarray, b) for _, b, _ in got])
        return batch, {
            **stats,
            "policy_lag": float(np.mean([done - v for v, _, _ in got])),
            "actor_restarts": float(self.pool.restarts),
        }

    def updated(self, state: Any, done: int) -> None:
        if done % self.dist.publish_every == 0:
            self.pool.publish(done, state)

    def report_scalars(self, learn_seconds: float, wall_seconds: float) -> dict:
        return {"learner_share": learn_seconds / wall_seconds}

    def run_state(self, state: Any, frames: int, final: bool = False) -> Any:
        del final
        return host_run_state(state, self.key, self._zeros, self._zeros, frames)


def _with_streams(spec: Any, num_envs: int) -> Any:
    """``spec`` with ``num_envs`` streams (the learner's batch of several
    actors' rollouts)."""
    fields = {
        "name": getattr(spec, "name", None),
        "observation_shape": tuple(spec.observation_shape),
        "action_space": spec.action_space,
        "num_envs": num_envs,
        "is_jax": False,
    }
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        return dataclasses.replace(spec, num_envs=num_envs)
    return types.SimpleNamespace(**fields)


def _learner_agent(
    config: AgentConfig, spec: Any, dist: DistributedConfig
) -> Agent[Any, Any]:
    """The learner's agent: built for the streams of one batch; checked against
    what the distributed layout can serve."""
    streams = int(spec.num_envs) * dist.rollouts_per_update
    agent = make_agent(config, _with_streams(spec, streams))
    name = type(config).__name__
    if agent.per_stream_state and dist.rollouts_per_update != dist.num_actors:
        raise ValueError(
            f"{name} keeps state per stream between updates, so every batch must "
            f"hold one rollout of each actor: set rollouts_per_update="
            f"{dist.num_actors} (= num_actors), not {dist.rollouts_per_update}."
        )
    core = config.network.core
    traces = core.recurrent and rc.method(core.method).advances_traces
    if dist.actor_traces == "chunked" and traces and agent.act_state_only is None:
        raise ValueError(no_state_only_step(config, "actor_traces"))
    if isinstance(config, PPOConfig) and recomputes_stale_traces(
        config, eqx.filter_eval_shape(agent.init, jax.random.PRNGKey(0)).params
    ):
        raise ValueError(
            "PPOConfig(stale_traces='recompute') re-derives the actors' traces "
            "with the learner's parameters, but distributed actors act with "
            "older ones: use stale_traces='store'."
        )
    return agent


def train_distributed(
    config: AgentConfig,
    env_fn: Callable[[int], Any],
    key: jax.Array,
    loop: LoopConfig,
    dist: DistributedConfig | None = None,
    *,
    address: str | None = None,
    log_dir: str | None = None,
    writers: MetricWriter | None = None,
    checkpoint_dir: str | None = None,
    progress: bool = False,
    resume: bool = False,
    seed: int = 0,
    name: str | None = None,
    run_config: Any = None,
    allow_config_change: bool = False,
    provenance: Any = None,
) -> TrainResult:
    """Trains any agent with Ray actors and one learner (see the module docstring).

    Args:
        config: the agent's configuration (shared by learner and actors):
            ``R2ACConfig``, ``PPOConfig`` or ``StreamingACConfig``.
        env_fn: ``env_fn(seed)`` builds one actor's batch of environments; it is
            shipped to the actors, so it must be picklable (a module-level
            function or a ``functools.partial`` of one).
        key: the learner's PRNG key (initial parameters).
        loop: updates, report and checkpoint periods.
        dist: actors, queue, publication period, failure handling.
        address: the Ray cluster to join (``"auto"``, ``"host:6379"``,
            ``"ray://host:10001"``); ``None`` starts a local one. Ignored when
            this process is already connected to a cluster.
        log_dir: TensorBoard event files and ``metrics.jsonl`` go here.
        writers: extra metric writers.
        checkpoint_dir: orbax checkpoints go here.
        progress: show a progress bar over frames.
        resume: continue from the latest checkpoint in ``checkpoint_dir``.
        seed: base seed of the actors' environments and sampling.
        name: prefix of the actors' Ray names (see :func:`actor_name`;
            default: a fresh random prefix).
        run_config: the run's config as JSON, recorded and compared on resume
            (as :func:`~rtrl_agents.train`; default: the agent's config and the
            learner's batch spec).
        allow_config_change: resume even though ``run_config`` differs.
        provenance: JSON kept in ``config.json``.

    Returns:
        The learner's final state (a ``RunnerState`` without environments or
        carries) and the reports. Besides the agent's metrics, reports hold
        ``learner_share`` (fraction of wall time spent in updates),
        ``policy_lag`` (updates between the parameters a rollout was collected
        with and the ones it trains), ``actor_restarts`` and ``fps``.

    Raises:
        ValueError: a layout the agent cannot use (per-stream state with
            ``rollouts_per_update != num_actors``; chunked actor traces for an
            agent that stores every step's carry), or periods set without a
            ``checkpoint_dir``.
        TimeoutError: no rollout arrived within ``queue_timeout_s``.
        RuntimeError: actors failed more than ``max_actor_restarts`` times.
    """
    ray = _import_ray()
    dist = dist or DistributedConfig()
    check_checkpoint_dir(loop, checkpoint_dir)
    owns_ray = not ray.is_initialized()
    if owns_ray:
        if address in (None, "local"):
            # A one-machine cluster: actors share the cores with the learner, so
            # they run at its priority (Ray nices workers to 15 by default).
            os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address=address, configure_logging=False)
    name = name or f"rtrl-{uuid.uuid4().hex[:8]}"
    pool = None
    try:
        pool = _ActorPool(ray, config, env_fn, dist, seed, name)
        agent = _learner_agent(config, pool.spec(), dist)
        k_agent, _, k_run = jax.random.split(_raw_key(jnp.asarray(key)), 3)
        frames_per_update = agent.rollout_length * agent.num_envs
        zeros = np.zeros(agent.num_envs)
        source = RaySource(
            pool, dist, frames_per_update, k_run, agent.num_envs, agent.per_stream_state
        )
        with Session(
            agent,
            agent.spec,
            loop,
            lambda: host_run_state(agent.init(k_agent), k_run, zeros, zeros, 0),
            frames_per_update,
            log_dir=log_dir,
            writers=writers,
            checkpoint_dir=checkpoint_dir,
            progress=progress,
            resume=resume,
            run_config=run_config,
            allow_config_change=allow_config_change,
            provenance=provenance,
        ) as session:
            return train_rollouts(agent, source, loop, session)
    finally:
        if pool is not None:
            pool.shutdown()
        if owns_ray:
            ray.shutdown()


def actor_name(prefix: str, index: int, incarnation: int = 0) -> str:
    """The Ray name of actor ``index`` after ``incarnation`` replacements."""
    return f"{prefix}-actor-{index}.{incarnation}"
