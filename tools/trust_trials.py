#!/usr/bin/env python3
"""Trials of the run record, through the command line as a user runs it.

1. Kills: one uninterrupted ``rtrl-bench run``, then ``--kills`` runs each
   SIGKILLed at a random report (every ``--write-kill-every``-th one in the
   middle of a checkpoint write instead) and resumed with ``--resume``. Each is
   compared with the uninterrupted run: ``metrics.jsonl`` record for record
   (fps left out), TensorBoard scalars, ``result.json`` (timing and provenance
   left out) and the final checkpoint's arrays bit for bit.
2. Corrupt checkpoints: a finished run's newest checkpoint damaged in one of
   several ways and the result removed; ``--resume`` must warn in one line, fall
   back to an older checkpoint, finish, and reach the uninterrupted run's state.

    python tools/trust_trials.py --kills 10 --out trials.json

Needs rtrl-bench installed (``nox -s bench`` installs it).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FRAMES = 128 * 300  # horizon, RTRL arm: 300 updates in 100 reports of 3
RUN = ["run", "horizon", "--variants", "rtrl", "--frames", str(FRAMES), "--quiet"]
RUN += ["--checkpoint-every", "9"]
CLI = [sys.executable, "-m", "rtrl_bench"]
WRITE_KILLER = """
import os, signal, sys, threading, time
import numpy as np
import rtrl_agents as ra
from rtrl_bench import main
target = int(os.environ["KILL_AT_SAVE"])
saves = [0]
original = ra.Checkpointer.save
def watch(directory):
    while True:
        if any(".orbax-checkpoint-tmp" in n for n in os.listdir(directory)):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.001)
def save(self, step, tree, **kw):
    saves[0] += 1
    if saves[0] == target:
        tree = (tree, np.zeros(50_000_000, np.float32))
        threading.Thread(target=watch, args=(self.directory,)).start()
    return original(self, step, tree, **kw)
ra.Checkpointer.save = save
sys.exit(main())
"""


def _records(run: Path) -> list[dict]:
    import rtrl_agents as ra

    return [
        {k: v for k, v in r.items() if k != "fps"}
        for r in ra.read_metrics(str(run / "metrics.jsonl"))
    ]


def _scalars(run: Path) -> list[tuple]:
    from tensorboardX.proto import event_pb2

    out = []
    for path in sorted(run.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos + 12 <= len(data):
            (n,) = struct.unpack("<Q", data[pos : pos + 8])
            # protoc-generated classes are invisible to static analysis.
            event = event_pb2.Event.FromString(  # pyright: ignore[reportAttributeAccessIssue]
                data[pos + 12 : pos + 12 + n]
            )
            pos += 16 + n
            out += [
                (v.tag, event.step, v.simple_value)
                for v in event.summary.value
                if not v.tag.endswith("fps")
            ]
    return sorted(out)


def _result(run: Path) -> dict:
    data = json.loads((run / "result.json").read_text())
    for k in ("seconds", "path", "provenance"):
        data.pop(k)
    return data


def _arrays(run: Path) -> list:
    import equinox as eqx
    import jax
    import numpy as np

    import rtrl_agents as ra
    import rtrl_envs
    from rtrl_bench import RunConfig

    config = ra.config_from_json(
        RunConfig, json.loads((run / "config.json").read_text())["config"]
    )
    env = rtrl_envs.make(
        config.env.name,
        num_envs=config.env.num_envs,
        seed=0,
        **dict(config.env.options),
    )
    agent = ra.r2ac(config.agent, env.spec)
    template = ra.init_runner(agent, env, jax.random.PRNGKey(0))
    ckpt = ra.Checkpointer(str(run / "ckpt"))
    state = ckpt.restore(template, ckpt.latest_step())
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(state, eqx.is_array))]


def _compare(run: Path, whole: Path) -> dict[str, bool]:
    import numpy as np

    a, b = _arrays(run), _arrays(whole)
    return {
        "metrics": _records(run) == _records(whole),
        "tensorboard": _scalars(run) == _scalars(whole),
        "result": _result(run) == _result(whole),
        "parameters": len(a) == len(b)
        and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)),
    }


def _kill_at_report(args: list[str], metrics: Path, report: int) -> float:
    import rtrl_agents as ra

    proc = subprocess.Popen([*CLI, *args], stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        if len(ra.read_metrics(str(metrics))) >= report:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    return len(ra.read_metrics(str(metrics)))


def _corrupt(ckpt: Path, how: str) -> None:
    step = max(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())
    files = [p for p in (ckpt / str(step)).rglob("*") if p.is_file()]
    if how == "truncated data":
        for p in files:
            if "state" in p.parts:
                p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    elif how == "garbled data":
        for p in files:
            if "state" in p.parts and p.stat().st_size > 16:
                b = bytearray(p.read_bytes())
                for i in range(0, len(b), 7):
                    b[i] ^= 0xFF
                p.write_bytes(bytes(b))
    elif how == "garbled metadata":
        for p in files:
            if "meta" in p.parts:
                p.write_bytes(b"{not json")
    elif how == "empty files":
        for p in files:
            p.write_bytes(b"")
    elif how == "half deleted":
        shutil.rmtree(ckpt / str(step) / "state")
    elif how == "empty folder":
        shutil.rmtree(ckpt / str(step))
        (ckpt / str(step)).mkdir()
    else:
        raise ValueError(how)


CORRUPTIONS = (
    "truncated data",
    "garbled data",
    "garbled metadata",
    "empty files",
    "half deleted",
    "empty folder",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--write-kill-every", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the rows as JSON")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="trust-trials-"))
    done = subprocess.run([*CLI, *RUN, "--logdir", str(root / "whole")], check=False)
    if done.returncode:
        return done.returncode
    whole = root / "whole" / "horizon" / "rtrl" / "seed0"
    rows = []
    for i in range(args.kills):
        logdir = root / f"kill{i}"
        run = logdir / "horizon" / "rtrl" / "seed0"
        argv = [*RUN, "--logdir", str(logdir)]
        if args.write_kill_every and (i + 1) % args.write_kill_every == 0:
            save = rng.randint(2, 9)
            env = {"KILL_AT_SAVE": str(save)}
            import os

            proc = subprocess.run(
                [sys.executable, "-c", WRITE_KILLER, *argv],
                env={**os.environ, **env},
                stderr=subprocess.DEVNULL,
                check=False,
            )
            how = f"during checkpoint write {save}"
            assert proc.returncode == -signal.SIGKILL, proc.returncode
        else:
            report = rng.randint(2, 98)
            got = _kill_at_report(argv, run / "metrics.jsonl", report)
            how = f"at report {report} ({got} records on disk)"
        # Resumed with the progress output on, as a user types it.
        loud = [a for a in argv if a != "--quiet"]
        resumed = subprocess.run(
            [*CLI, *loud, "--resume"], capture_output=True, text=True, check=False
        )
        row = {"trial": i, "kill": how, "resume_exit": resumed.returncode}
        if resumed.returncode == 0:
            row.update(_compare(run, whole))
        rows.append(row)
        print(json.dumps(row), flush=True)
    for how in CORRUPTIONS:
        logdir = root / f"corrupt-{how.replace(' ', '-')}"
        shutil.copytree(root / "whole", logdir)
        run = logdir / "horizon" / "rtrl" / "seed0"
        (run / "result.json").unlink()
        _corrupt(run / "ckpt", how)
        resumed = subprocess.run(
            [*CLI, *RUN, "--logdir", str(logdir), "--resume"],
            capture_output=True,
            text=True,
            check=False,
        )
        warnings = [x for x in resumed.stderr.splitlines() if "warning:" in x]
        row = {
            "corruption": how,
            "resume_exit": resumed.returncode,
            "stderr_lines": len(resumed.stderr.splitlines()),
            "warning": warnings[0] if warnings else None,
        }
        if resumed.returncode == 0:
            row.update(_compare(run, whole))
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    shutil.rmtree(root)
    bad = [
        r
        for r in rows
        if r["resume_exit"] != 0
        or not all(r.get(k) for k in ("metrics", "tensorboard", "result", "parameters"))
    ]
    print(f"{len(rows) - len(bad)} of {len(rows)} trials survived with equal records")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
