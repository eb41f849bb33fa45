"""Several servers behind one ``openai`` spec: balancing, failover and weight reloads, against
small local HTTP servers that fail on purpose (the real ``vllm serve`` pair is in
``test_openai_servers.py``)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sc_core.default_plugins.endpoints import Endpoints
from sc_core.default_plugins.openai_backend import OpenAIBackend
from sc_core.errors import ScError
from sc_core.models import SamplingParams, load_model, resolve_model
from sc_core.run import Run, RunConfig, write_json

GREEDY = SamplingParams(max_new_tokens=4, temperature=0.0)


class Server:
    """A local server that answers completions after ``delay`` seconds, or fails as told:
    ``fail`` is ``None``, an HTTP status, or ``"reset"`` (closes the connection unanswered)."""

    def __init__(self, delay: float = 0.0, fail: int | str | None = None):
        self.delay, self.fail = delay, fail
        self.paths: list[str] = []
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        self.version = "default"
        self.rpc: list[dict] = []
        self.rpc_error = ""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                server.paths.append(self.path)
                if self.path == "/v1/models":
                    self.answer(200, {"data": [{"id": "served"}]})
                elif self.path == "/weight_info" and server.fail != 404:
                    self.answer(200, {"weight_version": server.version})
                else:
                    self.answer(404, {"detail": "Not Found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                server.paths.append(self.path)
                if self.path == "/update_weight_version":
                    server.version = body["new_version"]
                if self.path == "/collective_rpc":
                    server.rpc.append(body)
                    if server.rpc_error:
                        return self.answer(500, {"error": {"message": server.rpc_error}})
                if self.path != "/v1/completions":
                    return self.answer(200, {})
                with server.lock:
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                time.sleep(server.delay)
                with server.lock:
                    server.in_flight -= 1
                if server.fail == "reset":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if isinstance(server.fail, int) and server.fail != 404:
                    return self.answer(server.fail, {"error": {"message": "broken"}})
                ids = body["prompt"][-1:]
                self.answer(200, {"choices": [{"text": "x", "finish_reason": "length",
                                               "token_ids": ids}]})  # fmt: skip

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def completions(self) -> int:
        return self.paths.count("/v1/completions")

    def close(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def servers():
    made: list[Server] = []

    def make(**kwargs) -> Server:
        made.append(Server(**kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture(scope="module")
def tokenizer_dir():
    return resolve_model("smollm2")


def nowhere() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"  # nothing listens there


def backend(urls: list[str], tokenizer_dir: str, **options):
    return load_model(f"openai:m@{','.join(urls)}", tokenizer=tokenizer_dir, **options)


def test_requests_spread_by_load(servers, tokenizer_dir):
    slow, fast = servers(delay=0.4), servers(delay=0.05)
    model = backend([slow.url, fast.url], tokenizer_dir)
    assert model.concurrency == 16  # 8 per server
    prompts = [[i] for i in range(40)]
    generations = model.generate(prompts, GREEDY)
    assert [g.token_ids for g in generations] == prompts  # each its own answer, in order
    assert slow.completions() + fast.completions() == 40
    assert fast.completions() > 2 * slow.completions() > 0  # the idle one gets more
    assert max(slow.most_in_flight, fast.most_in_flight) <= 9


@pytest.mark.parametrize("failure", [503, "reset", "refused"])
def test_a_failing_server_loses_no_request(servers, tokenizer_dir, failure):
    good = servers(delay=0.02)
    bad = nowhere() if failure == "refused" else servers(fail=failure).url
    model = backend([bad, good.url], tokenizer_dir)
    prompts = [[i] for i in range(12)]
    assert [g.token_ids for g in model.generate(prompts, GREEDY)] == prompts
    assert good.completions() == 12
    assert list(model.endpoints.down) == [bad]
    assert model.endpoints.answered[good.url] == 12


def test_a_timeout_marks_the_server_down(servers, tokenizer_dir):
    stuck, good = servers(delay=3), servers()
    model = backend([stuck.url, good.url], tokenizer_dir, timeout=0.5)
    assert [g.token_ids for g in model.generate([[1], [2]], GREEDY)] == [[1], [2]]
    assert "did not answer within 0.5s" in model.endpoints.down[stuck.url]


def test_every_server_down_is_one_line_naming_each(servers, tokenizer_dir):
    broken, refused = servers(fail=502), nowhere()
    model = backend([broken.url, refused], tokenizer_dir)
    with pytest.raises(ScError) as info:
        model.generate([[1], [2], [3]], GREEDY)
    message = str(info.value)
    assert "\n" not in message and message.startswith("all 2 model servers failed")
    assert "HTTP 502" in message and refused in message and "refused" in message.lower()


def test_a_bad_request_fails_at_once_without_failover(servers, tokenizer_dir):
    first, second = servers(fail=400), servers(fail=400)
    model = backend([first.url, second.url], tokenizer_dir)
    with pytest.raises(ScError, match="HTTP 400: broken"):
        model.generate([[1]], GREEDY)
    assert first.completions() + second.completions() == 1 and not model.endpoints.down


def test_urls_from_base_url_and_environment(servers, tokenizer_dir, monkeypatch):
    one, two = servers(), servers()
    monkeypatch.setenv("SC_OPENAI_BASE_URL", f"{one.url}, {two.url}/")
    model = load_model("openai:m", tokenizer=tokenizer_dir)
    assert model.endpoints.urls == [one.url, two.url]
    model = load_model("openai:m", tokenizer=tokenizer_dir, base_url=two.url)
    assert model.endpoints.urls == [two.url]
    with pytest.raises(ScError, match="is not an http"):
        load_model(f"openai:m@{one.url},ftp://x", tokenizer=tokenizer_dir)


def test_a_checkpoint_is_loaded_into_every_server(servers, tokenizer_dir):
    one, two = servers(), servers()
    model = load_model(f"openai:{tokenizer_dir}@{one.url},{two.url}")
    assert model.served_name == "served"
    reload = [
        "/v1/models", "/weight_info", "/pause?mode=wait", "/collective_rpc",
        "/reset_prefix_cache", "/update_weight_version", "/resume",
    ]  # fmt: skip
    assert one.paths == ["/v1/models", *reload[1:]] and two.paths == ["/v1/models", *reload[1:]]
    assert one.version == two.version == tokenizer_dir
    rpc = {"method": "sc_reload_weights", "kwargs": {"weights_path": tokenizer_dir}}
    assert one.rpc == two.rpc == [rpc]
    one.paths.clear()
    load_model(f"openai:{tokenizer_dir}@{one.url},{two.url}")  # already served: no reload
    assert one.paths == ["/v1/models", "/weight_info"]


def test_a_server_without_reloading_says_how_to_start_it(servers, tokenizer_dir):
    plain = servers(fail=404)
    with pytest.raises(ScError, match="VLLM_SERVER_DEV_MODE=1 and --worker-extension-cls"):
        load_model(f"openai:{tokenizer_dir}@{plain.url}")
    with pytest.raises(ScError, match="not a checkpoint folder"):
        Endpoints([plain.url], {}, 5).load_weights(str(Path(tokenizer_dir).parent))
    assert "/collective_rpc" not in plain.paths


def test_a_server_without_the_extension_says_how_to_start_it(servers, tokenizer_dir):
    plain = servers()
    plain.rpc_error = "Worker failed with error ''CPUWorker' object has no attribute "
    plain.rpc_error += "'sc_reload_weights''"
    with pytest.raises(ScError, match="sc_vllm.server.WeightReload"):
        load_model(f"openai:{tokenizer_dir}@{plain.url}")
    assert plain.paths[-1] == "/resume"  # never left paused


def test_sc_run_serves_each_new_checkpoint_on_the_same_servers(servers, tokenizer_dir, tmp_path):
    one, two = servers(), servers()
    spec = f"openai:smollm2@{one.url},{two.url}"
    run = Run.create(RunConfig(tools="calculator", model=spec, name="r"), tmp_path)
    assert run.model_for(1) == spec
    run.dir.iteration(1).mkdir(parents=True)
    write_json(run.dir.iteration(1) / "train.json", {"checkpoint": tokenizer_dir})
    assert run.model_for(2) == f"openai:{tokenizer_dir}@{one.url},{two.url}"
    served = run.serve(run.model_for(2))
    assert served.served_name == "served" and one.version == two.version == tokenizer_dir
    assert OpenAIBackend.weights_of(f"smollm2@{one.url},{two.url}") == "smollm2"  # trained
