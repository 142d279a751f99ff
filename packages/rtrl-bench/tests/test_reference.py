"""The seed's Tables 1 and 2 ship as package data and load as typed rows."""

import csv
import dataclasses
from pathlib import Path

import pytest

from rtrl_bench import CITATION, ReferenceResult, load_reference, reference_results

SHARED = Path(__file__).parents[3].parent / "shared/reference/irie2024_results.csv"


def test_every_row_loads_typed_and_frozen():
    rows = load_reference()
    assert len(rows) == 40
    assert all(isinstance(r, ReferenceResult) for r in rows)
    assert {r.table for r in rows} == {1, 2}
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows[0].mean = 0.0
    assert "2305.19044" in CITATION


def test_known_values():
    (rtrl,) = [
        r
        for r in reference_results("dmlab", "rooms_watermaze")
        if r.system == "eLSTM-RTRL" and r.unroll == 100
    ]
    assert (rtrl.mean, rtrl.std, rtrl.seeds, rtrl.frames) == (54.8, 4.3, 3, 1.2e9)
    breakout = reference_results("atari", "breakout")
    assert [r.system for r in breakout] == ["feedforward", "eLSTM-TBPTT", "eLSTM-RTRL"]
    assert breakout[2].mean == 275 and breakout[2].frames == 8e8
    r2d2 = [r for r in load_reference() if r.system == "R2D2"]
    assert all(r.unroll is None and r.std is None for r in r2d2)


@pytest.mark.skipif(not SHARED.exists(), reason="the monorepo's shared folder")
def test_package_copy_matches_the_shared_reference():
    with SHARED.open() as f:
        shared = list(csv.DictReader(f))
    rows = load_reference()
    assert len(rows) == len(shared)
    for r, s in zip(rows, shared, strict=True):
        assert (r.task, r.system, r.mean) == (s["task"], s["system"], float(s["mean"]))


def test_invalid_row_is_rejected():
    with pytest.raises(ValueError, match="table"):
        ReferenceResult(3, "atari", "Pong", "x", 1e6, None, 0.0, None, None, "")
