"""The benchmark runs and reports adapter and raw figures side by side."""

from __future__ import annotations

import json

import pytest

from rtrl_envs import benchmark


def test_benchmark_small(tmp_path) -> None:
    pytest.importorskip("envpool")
    out = tmp_path / "b.json"
    names = ["atari/Breakout", "gymnax/CartPole-v1", "memory/copy"]
    assert benchmark.main([*names, "--num-envs", "2", "--steps", "20",
                           "--rounds", "2", "--json", str(out)]) == 0  # fmt: skip
    data = json.loads(out.read_text())
    rows = {r["name"]: r for r in data["results"]}
    assert set(rows) == set(names)
    assert (
        rows["atari/Breakout"]["raw_sps"] > 0
        and rows["atari/Breakout"]["adapter_sps"] > 0
    )
    assert rows["gymnax/CartPole-v1"]["raw_sps"] > 0
    assert rows["memory/copy"]["raw_sps"] is None
    assert data["provenance"]["versions"]["jax"]
