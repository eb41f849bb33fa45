"""``sc run`` for real, on CPU, with the embedded model and the rft backend: challenge, filter,
evaluate, train, evaluate, report. The run is killed mid-iteration once and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SC = Path(sys.executable).with_name("sc")
EXAMPLES = ROOT / "examples" / "calculator_tasks.jsonl"  # 2 of its 5 tasks pass the filter

RUN = [
    "run", "--tools", "calculator", "--model", "smollm2", "--name", "ci", "--iterations", "1",
    "--tasks-per-iteration", "1", "--max-turns", "1", "--max-new-tokens", "16",
    "--task-tokens", "32", "--tasks", str(EXAMPLES), "--eval-k", "1", "--workers", "1",
    "--backend", "rft", "--option", "k=2", "--option", "min_reward=0", "--json",
    "--strategy", "explore",  # seeded would show calculator's seed tasks, which EXAMPLES copies
]  # fmt: skip


def sc(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    env = os.environ | {"OMP_NUM_THREADS": "1"}  # one thread: a busy 2-core machine thrashes
    return subprocess.Popen(
        [str(SC), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sc_run_end_to_end_killed_and_resumed(tmp_path, model_dir):
    run_dir = tmp_path / "runs" / "ci"
    folder = run_dir / "iterations" / "001"
    first = sc(*RUN, cwd=tmp_path)
    deadline = time.monotonic() + 900
    while not (folder / "eval-before.json").exists():  # challenged, filtered and evaluated
        assert first.poll() is None, first.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no evaluation within 15 minutes"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)  # kill -9 mid-iteration, before training ends
    first.wait()
    assert not (folder / "eval-after.json").exists()
    kept = (folder / "kept.jsonl").read_text()
    filtered = (folder / "filter.json").read_text()

    resumed = sc("run", "--name", "ci", "--resume", "--json", cwd=tmp_path)
    out, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err[-3000:]
    summary = json.loads(out[out.index("{") :])
    assert summary["run_dir"] == "runs/ci"
    assert summary["iterations"][0]["kept"] == 2
    assert summary["iterations"][0]["pass_at_1_before"] is not None
    assert summary["iterations"][0]["pass_at_1_after"] is not None
    # finished work was not redone: the challenge phase's files are byte for byte the same
    assert (folder / "kept.jsonl").read_text() == kept
    assert (folder / "filter.json").read_text() == filtered

    stages = json.loads(filtered)["stages"]
    assert json.loads(filtered)["attempts"] == 1 and stages["unique"] == 2
    train = json.loads((folder / "train.json").read_text())
    assert train["tasks"] == 1 and train["steps"], train  # one task trained on, one held out
    checkpoint = Path(train["checkpoint"])
    assert (checkpoint / "config.json").is_file() and (checkpoint / "model.safetensors").is_file()
    kinds = {row["kind"] for row in rows(run_dir / "metrics.jsonl")}
    assert kinds == {"filter", "eval", "train", "train_summary"}
    assert len(rows(run_dir / "tasks.jsonl")) == 2
    assert all("rejection" in row for row in rows(run_dir / "rejected.jsonl"))
    # the learning curve, pass rates, filter yield, the kept tasks' diversity, reward
    assert (run_dir / "report.html").read_text().count("data:image/png;base64,") == 5

    report = sc("report", "ci", cwd=tmp_path)
    out, err = report.communicate(timeout=120)
    assert report.returncode == 0, err
    assert "pass@1" in out and "report: runs/ci/report.html" in out

    # the checkpoint is what `sc eval --model DIR` takes
    evaluation = sc(
        "eval", "--tasks", str(run_dir / "tasks.jsonl"),
        "--model", str(checkpoint), "--max-turns", "1", "--temperature", "0", "--json",
        "--out", str(tmp_path / "eval"), cwd=tmp_path,
    )  # fmt: skip
    out, err = evaluation.communicate(timeout=900)
    assert evaluation.returncode == 0, err[-3000:]
    assert len(json.loads(out)["tasks"]) == 2


def test_sc_run_refuses_to_overwrite_and_explains(tmp_path):
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    (tmp_path / "runs" / "taken" / "config.toml").write_text("")
    busy = sc("run", "--tools", "calculator", "--name", "taken", cwd=tmp_path)
    out, err = busy.communicate(timeout=120)
    assert busy.returncode == 1
    assert "runs/taken already exists: pass --resume, or choose another --name" in err
    assert "Traceback" not in err
    missing = sc("run", "--name", "nothing", "--resume", cwd=tmp_path)
    out, err = missing.communicate(timeout=120)
    assert missing.returncode == 1 and "is not a run directory" in err
