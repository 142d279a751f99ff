"""The benchmark runs and reports adapter and raw figures side by side."""

from __future__ import annotations

import dataclasses

import pytest

from rtrl_envs import benchmark


def test_benchmark_small(tmp_path) -> None:
    pytest.importorskip("envpool")
    names = ["atari/Breakout", "gymnax/CartPole-v1", "memory/copy"]
    results = benchmark.run_benchmark(names, num_envs=2, steps=20, rounds=2)
    rows = {r.name: dataclasses.asdict(r) for r in results}
    assert set(rows) == set(names)
    table = benchmark.format_table(results)
    assert table.count("\n") == len(names) + 1
    assert (
        rows["atari/Breakout"]["raw_sps"] > 0
        and rows["atari/Breakout"]["adapter_sps"] > 0
    )
    assert rows["gymnax/CartPole-v1"]["raw_sps"] > 0
    assert rows["memory/copy"]["raw_sps"] is None
