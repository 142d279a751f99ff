"""Tiny data generators for the prediction learners (no rtrl-envs import)."""

from __future__ import annotations

import numpy as np

import rtrl_agents as ra


def copy_task(
    num_streams: int, num_episodes: int, length: int, width: int, seed: int = 0
) -> ra.SequenceBatch:
    """Streams of copy episodes: ``length`` steps of ``width`` random bits (input
    flag on), one recall-cue step, then ``length`` blank steps whose targets are
    the bits in order. Inputs ``[bits (width), input flag, recall flag]``; only
    the recall steps are scored. Episode length ``2 * length + 1``.
    """
    rng = np.random.default_rng(seed)
    ep = 2 * length + 1
    bits = rng.integers(0, 2, (num_streams, num_episodes, length, width))
    x = np.zeros((num_streams, num_episodes, ep, width + 2), np.float32)
    y = np.zeros((num_streams, num_episodes, ep, width), np.float32)
    m = np.zeros((num_streams, num_episodes, ep), np.float32)
    r = np.zeros((num_streams, num_episodes, ep), bool)
    x[:, :, :length, :width] = bits
    x[:, :, :length, width] = 1.0
    x[:, :, length, width + 1] = 1.0
    y[:, :, length + 1 :] = bits
    m[:, :, length + 1 :] = 1.0
    r[:, :, 0] = True

    def flat(a):
        return a.reshape(num_streams, num_episodes * ep, *a.shape[3:])

    return ra.SequenceBatch(flat(x), flat(y), flat(m), flat(r))


def trace_conditioning(
    num_streams: int,
    num_steps: int,
    isi: int = 4,
    iti: tuple[int, int] = (6, 12),
    seed: int = 0,
) -> tuple[ra.CumulantBatch, np.ndarray]:
    """A trace-conditioning-like stream: a conditioned stimulus (CS), ``isi``
    empty steps, then the unconditioned stimulus (US, the cumulant), then an
    inter-trial interval drawn from ``iti``. Inputs ``[CS, US]``. Between CS and
    US the input is blank, as during the inter-trial interval: only memory of
    the CS tells them apart. Returns the stream and each stream's cumulant
    sequence (for the true returns).
    """
    rng = np.random.default_rng(seed)
    x = np.zeros((num_streams, num_steps, 2), np.float32)
    for b in range(num_streams):
        t = int(rng.integers(*iti))
        while t < num_steps:
            x[b, t, 0] = 1.0
            us = t + isi + 1
            if us < num_steps:
                x[b, us, 1] = 1.0
            t = us + int(rng.integers(*iti))
    c = x[:, :, 1].copy()
    resets = np.zeros((num_streams, num_steps), bool)
    return ra.CumulantBatch(x, c, resets), c


def discounted_returns(cumulants: np.ndarray, discount: float) -> np.ndarray:
    """``G_t = sum_k discount^(k-1) c_(t+k)`` (truncated at the stream's end)."""
    g = np.zeros_like(cumulants, np.float64)
    acc = np.zeros(cumulants.shape[0])
    for t in range(cumulants.shape[1] - 1, -1, -1):
        g[:, t] = acc
        acc = cumulants[:, t] + discount * acc
    return g
