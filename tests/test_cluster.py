"""``--ray``: the filter and the verifiers on a real Ray cluster, and nothing of Ray without it.

The cluster is real: a head (``ray start --head``) and a worker node (``ray start --address``)
on this machine, one CPU each, shared by the tests of this module and stopped after them.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from sc_core.distributed import free_port
from sc_core.sandbox import Limits, SandboxPool, get_sandbox
from sc_core.task import read_tasks, write_jsonl
from sc_core.verify import run_filter

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def calculator_tasks(count: int) -> list[dict]:
    """Distinct tasks, every third with a verifier that the filter rejects."""
    tasks = []
    for i in range(count):
        a, b = 3 + i, 7 + 2 * i
        expected = a + b + (i % 3 == 0)  # off by one: rejected at solution_passes
        tasks.append(
            {
                "id": f"t{i}",
                "toolset": "calculator",
                "seed": i,
                "instruction": f"What is {a} + {b}?",
                "verify": f"def verify(state, answer):\n    return answer == {expected}\n",
                "solution": f"def solve(tools):\n    return tools.add(a={a}, b={b})\n",
                "failures": [f"def solve(tools):\n    return tools.multiply(a={a}, b={b})\n"],
            }
        )
    return tasks


def _processes(root: Path, port: int) -> set[psutil.Process]:
    """The processes of the cluster under ``root`` with its head at ``port`` (the one that
    has no path there names the head's address), and their descendants."""
    found: set[psutil.Process] = set()
    for process in psutil.process_iter(["cmdline"]):
        args = process.info["cmdline"] or []
        if any(str(root) in arg or arg.endswith(f":{port}") for arg in args):
            found.add(process)
            with suppress(psutil.NoSuchProcess):
                found.update(process.children(recursive=True))
    return found


def _ray_processes() -> set[int]:
    names = ("raylet", "gcs_server", "ray::", "ray/", "ray.")
    pids = set()
    for process in psutil.process_iter(["name", "cmdline"]):
        text = (process.info["name"] or "") + " ".join(process.info["cmdline"] or [])
        if any(name in text for name in names):
            pids.add(process.pid)
    return pids


@dataclass
class Cluster:
    address: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and one worker node, 1 CPU and 80 MB of object store each. Processes reach it
    with the cluster's own token, as Ray's token auth asks; Ray reads that setting when it is
    imported, so whatever connects to it runs in a process of its own, started with ``env``."""
    root = Path(f"/tmp/sc-ray-{secrets.token_hex(3)}")  # Ray's socket paths must stay short
    token = tmp_path_factory.mktemp("ray") / "token"
    token.write_text(secrets.token_hex(32))
    env = os.environ | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    port, client_port = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--object-store-memory", "80000000", "--disable-usage-stats"]
    head = [
        "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
        "--ray-client-server-port", str(client_port), "--include-dashboard", "false",
        "--temp-dir", str(root / "head"),
    ]  # fmt: skip
    worker = ["--address", address, "--node-ip-address", "127.0.0.1"]
    worker += ["--temp-dir", str(root / "worker")]
    try:
        for args in (head, worker):
            subprocess.run(
                [str(BIN / "ray"), "start", *args, *common],
                env=env,
                check=True,
                capture_output=True,
                timeout=180,
            )
        yield Cluster(address, env)
    finally:
        processes = _processes(root, port)
        for process in processes:
            with suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(list(processes), timeout=30)
        subprocess.run(["rm", "-rf", str(root)], check=False)


@pytest.fixture(scope="module")
def task_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tasks") / "tasks.jsonl"
    write_jsonl(path, calculator_tasks(24))
    return path


@pytest.fixture(scope="module")
def local_verdicts(task_file) -> list[dict]:
    with SandboxPool(get_sandbox(), Limits(), 2) as pool:
        report = run_filter(list(read_tasks(task_file)), pool)
    return report.to_dict()["tasks"]


def sc(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "sc"), *args], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT
    )


@pytest.mark.parametrize("command", ["verify", "challenge", "eval", "run"])
def test_commands_take_ray(command):
    from sc_core.cli import cli

    option = next(p for p in cli.commands[command].params if p.name == "ray_address")
    assert option.opts == ["--ray"] and option.flag_value == "local" and option.default is None


def test_no_ray_without_the_option(task_file):
    """sc, imported and run without --ray, never imports Ray."""
    program = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from sc_core.cli import cli\n"
        f"result = CliRunner().invoke(cli, ['verify', {str(task_file)!r}, '--json'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(name for name in sys.modules if name.partition('.')[0] == 'ray'))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_ray_not_installed_is_one_line(task_file):
    program = (
        "import sys\n"
        "sys.modules['ray'] = None  # what an environment without Ray gives: ImportError\n"
        f"sys.argv = ['sc', 'verify', {str(task_file)!r}, '--ray']\n"
        "from sc_core.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: --ray needs Ray, which is not installed: pip install ray"
    ]


def test_an_address_nobody_answers_at_is_one_line_at_once(task_file):
    """ray.init would retry such an address for minutes without saying why."""
    port = free_port()  # nothing listens there
    started = time.monotonic()
    done = sc("verify", str(task_file), f"--ray=127.0.0.1:{port}")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: could not reach the Ray cluster at '127.0.0.1:{port}': Connection refused"
    ]
    assert time.monotonic() - started < 30


def test_a_file_after_ray_is_not_taken_for_the_address(task_file):
    done = sc("verify", "--ray", str(task_file))
    assert done.returncode == 2
    assert "is a file, not a cluster address: put --ray after the arguments" in done.stderr


def test_ray_alone_starts_a_local_cluster_and_stops_it(task_file, local_verdicts):
    before = _ray_processes()
    done = sc("verify", str(task_file), "--json", "--ray")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tasks"] == local_verdicts
    left = _ray_processes() - before
    assert not left, [psutil.Process(pid).cmdline() for pid in left if psutil.pid_exists(pid)]


def test_sigterm_mid_verify_stops_the_local_cluster(tmp_path):
    """Ray's driver takes SIGTERM over; sc takes it back, so a killed ``sc verify --ray``
    still unwinds: exit 143, and no Ray process is left."""
    path = tmp_path / "many.jsonl"
    write_jsonl(path, calculator_tasks(400))
    before = _ray_processes()
    log = tmp_path / "stderr"
    with log.open("w") as stderr:
        command = [str(BIN / "sc"), "verify", str(path), "--json", "--ray"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT)
        deadline = time.monotonic() + 120
        while "verify: started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 143, log.read_text()[-2000:]
    time.sleep(2)
    left = _ray_processes() - before
    assert not left, [psutil.Process(pid).cmdline() for pid in left if psutil.pid_exists(pid)]


def test_verify_on_a_cluster_gives_the_local_verdicts(cluster, task_file, local_verdicts):
    done = sc("verify", str(task_file), "--json", "--ray", cluster.address, env=cluster.env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["tasks"] == local_verdicts
    assert 0 < result["kept"] < result["total"]


KILL_MIDWAY = """
import json, os, signal, sys
from sc_core.cluster import RayPool
from sc_core.sandbox import Limits
from sc_core.task import read_tasks
from sc_core.verify import run_filter

items = list(read_tasks(sys.argv[1]))
with RayPool(None, Limits(), 1, sys.argv[2]) as pool:
    pids, done = pool.pids(), []

    def kill_one_midway(verdict):
        done.append(verdict.id)
        if len(done) == 4:
            os.kill(pids[1], signal.SIGKILL)

    report = run_filter(items, pool, on_done=kill_one_midway)
    restarted = pool.pids()[1] != pids[1]
    print(json.dumps({"nodes": len(pids), "requeued": pool.requeued, "restarted": restarted,
                      "done": len(set(done)), "tasks": report.to_dict()["tasks"]}))
"""


def test_a_killed_node_loses_no_task(cluster, task_file, local_verdicts):
    """The actor of one node is killed mid-verify: its tasks run elsewhere, every task gets
    its verdict, and the actor comes back."""
    done = subprocess.run(
        [sys.executable, "-c", KILL_MIDWAY, str(task_file), cluster.address],
        capture_output=True,
        text=True,
        timeout=300,
        env=cluster.env,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["nodes"] == 2
    assert result["requeued"] > 0
    assert result["restarted"]
    assert result["done"] == len(local_verdicts)
    assert result["tasks"] == local_verdicts


SCORE = """
import json, sys
from sc_core.agent import Episode
from sc_core.cluster import RayPool
from sc_core.evaluate import score_episodes
from sc_core.sandbox import Limits
from sc_core.task import CodeAsTask

task = CodeAsTask.from_dict(json.loads(sys.argv[1]))
episodes = [Episode("t1", 1, [], [], answer=answer, state={}) for answer in (13, 0)]
episodes.append(Episode("t1", 1, [], [], state=None, error="crashed"))
with RayPool(None, Limits(), 1, sys.argv[2]) as pool:
    scored = score_episodes([(task, episode) for episode in episodes], pool)
print(json.dumps([[item.score, item.error] for item in scored]))
"""


def test_scoring_on_a_cluster(cluster):
    """Episodes' verifiers run on the cluster; an episode without a state is not sent."""
    task = calculator_tasks(2)[1]  # 4 + 9 = 13
    done = subprocess.run(
        [sys.executable, "-c", SCORE, json.dumps(task), cluster.address],
        capture_output=True,
        text=True,
        timeout=300,
        env=cluster.env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[1.0, None], [0.0, None], [0.0, "crashed"]]
