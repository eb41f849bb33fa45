"""The ``openai`` backend: against a real ``vllm serve`` on 127.0.0.1 (skipped without vLLM),
and, for headers and failures, against a tiny local stub server.

The real server is one process group for the module (about 35 s to start on two CPU cores with
``--enforce-eager``), killed as a group at teardown.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sc_core.distributed import free_port
from sc_core.errors import ScError
from sc_core.models import Request, SamplingParams, load_model, resolve_model


def chat(tokenizer, text: str) -> list[int]:
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
    )
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


@pytest.fixture(scope="module")
def server(vllm_servers, tmp_path_factory):
    """A real vLLM OpenAI-compatible server on 127.0.0.1; yields its /v1 URL."""
    flags = ["--gpu-memory-utilization", "0.2"]
    with vllm_servers(1, tmp_path_factory.mktemp("vllm"), flags) as [(url, _)]:
        yield url


@pytest.fixture(scope="module")
def remote(server):
    return load_model(f"openai:smollm2@{server}")


GREEDY = SamplingParams(max_new_tokens=24, temperature=0.0)


def test_ids_decode_to_text_and_end_with_end_of_turn(remote):
    tok = remote.tokenizer
    params = SamplingParams(max_new_tokens=80, temperature=0, logprobs=True)
    [gen] = remote.generate([chat(tok, "What is 1+1?")], params)
    assert tok.decode(gen.token_ids, skip_special_tokens=True) == gen.text
    assert gen.logprobs is not None and len(gen.logprobs) == len(gen.token_ids)
    assert all(lp <= 0 for lp in gen.logprobs)
    if gen.finish_reason == "stop":
        assert gen.token_ids[-1] == tok.eos_token_id


def test_finish_reasons(remote):
    tok = remote.tokenizer
    cut = remote.generate(
        [chat(tok, "Tell me a long story.")], SamplingParams(max_new_tokens=4, temperature=0)
    )[0]
    assert cut.finish_reason == "length" and len(cut.token_ids) == 4
    done = remote.generate(
        [chat(tok, "What is 1+1?")],
        SamplingParams(max_new_tokens=40, temperature=0, regex=r"The answer is [0-9]\."),
    )[0]
    assert done.finish_reason == "stop"
    assert done.text.startswith("The answer is ") and done.token_ids[-1] == tok.eos_token_id


def test_greedy_matches_transformers_backend(remote):
    local = load_model("transformers:smollm2")
    prompt = chat(local.tokenizer, "Write one sentence about the sea.")
    params = SamplingParams(max_new_tokens=16, temperature=0.0)
    mine = local.generate([prompt], params)[0]
    theirs = remote.generate([prompt], params)[0]
    # fp32 on both sides, but different kernels: the first tokens agree, later ones may drift.
    assert theirs.token_ids[:10] == mine.token_ids[:10]


def test_batch_keeps_order(remote):
    tok = remote.tokenizer
    questions = ["What is 2+2?", "Name a fruit.", "Say hello in French.", "What colour is grass?"]
    prompts = [chat(tok, q) for q in questions]
    params = SamplingParams(max_new_tokens=8, temperature=0.0)
    batch = remote.generate(prompts, params)
    alone = [remote.generate([p], params)[0] for p in prompts]
    for together, single in zip(batch, alone, strict=True):
        assert together.token_ids[:4] == single.token_ids[:4]
    assert len({tuple(g.token_ids) for g in batch}) == len(batch)


def test_follow_ups_are_sent_while_other_requests_run(remote):
    tok = remote.tokenizer
    short, long = chat(tok, "What is 2+2?"), chat(tok, "Tell me a long story about a dragon.")
    params = SamplingParams(max_new_tokens=8, temperature=0.0)
    events, results = [], {}

    def then(request, generation):
        events.append(request.owner)
        results[request.owner] = generation
        if request.owner == "short":
            return [Request(request.prompt + generation.token_ids + short, params, "next")]
        return []

    running = SamplingParams(max_new_tokens=300, temperature=0.0)
    remote.generate_continuously(
        [Request(short, params, "short"), Request(long, running, "long")], then
    )
    assert events == ["short", "next", "long"]
    [alone] = remote.generate([short + results["short"].token_ids + short], params)
    assert results["next"].token_ids[:4] == alone.token_ids[:4]


def test_server_error_is_one_line(remote):
    with pytest.raises(ScError) as info:
        remote.generate([[1] * 3000], GREEDY)  # longer than --max-model-len
    message = str(info.value)
    assert "\n" not in message and "HTTP 400" in message and "/v1/completions" in message


# -- a stub server: headers, fallbacks and failures, without vLLM ------------------------------


class Stub:
    """A local HTTP server that records requests and answers with ``self.reply``."""

    def __init__(self):
        self.requests: list[dict] = []
        self.reply: tuple[int, dict] = (200, {})
        self.delay = 0.0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                time.sleep(stub.delay)
                status, payload = stub.reply
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    server = Stub()
    yield server
    server.close()


@pytest.fixture(scope="module")
def tokenizer_dir():
    pytest.importorskip("transformers")
    return resolve_model("smollm2")


@pytest.fixture
def no_keys(monkeypatch):
    for name in ("SC_OPENAI_API_KEY", "OPENAI_API_KEY", "SC_OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def choice(text="Hi there", **extra):
    return {"choices": [{"index": 0, "text": text, "finish_reason": "stop", **extra}]}


def test_api_key_sent_as_bearer(stub, tokenizer_dir, no_keys, monkeypatch):
    stub.reply = (200, choice(token_ids=[1, 2], logprobs={"token_logprobs": [-0.5, -0.1]}))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback")
    monkeypatch.setenv("SC_OPENAI_API_KEY", "sk-sc")
    model = load_model(f"openai:my-model@{stub.url}", tokenizer=tokenizer_dir)
    params = SamplingParams(max_new_tokens=7, temperature=0.5, top_p=0.9, seed=3, logprobs=True)
    model.generate([[5, 6, 7], [8]], params)
    assert [r["headers"]["Authorization"] for r in stub.requests] == ["Bearer sk-sc"] * 2
    bodies = sorted((r["body"] for r in stub.requests), key=lambda b: b["seed"])
    assert stub.requests[0]["path"] == "/v1/completions"
    assert bodies[0] == {
        "model": "my-model", "prompt": [5, 6, 7], "max_tokens": 7, "temperature": 0.5,
        "top_p": 0.9, "logprobs": 1, "n": 1, "seed": 3, "return_token_ids": True,
    }  # fmt: skip
    assert bodies[1]["prompt"] == [8] and bodies[1]["seed"] == 4

    stub.requests.clear()
    monkeypatch.delenv("SC_OPENAI_API_KEY")
    load_model(f"openai:my-model@{stub.url}", tokenizer=tokenizer_dir).generate([[1]], params)
    assert stub.requests[0]["headers"]["Authorization"] == "Bearer sk-fallback"

    stub.requests.clear()
    monkeypatch.setenv("MY_KEY", "sk-mine")
    load_model(f"openai:m@{stub.url}", tokenizer=tokenizer_dir, api_key_env="MY_KEY").generate(
        [[1]], params
    )
    assert stub.requests[0]["headers"]["Authorization"] == "Bearer sk-mine"


def test_no_key_no_header(stub, tokenizer_dir, no_keys):
    stub.reply = (200, choice(token_ids=[1, 2]))
    load_model(f"openai:m@{stub.url}", tokenizer=tokenizer_dir).generate([[1]], GREEDY)
    assert "Authorization" not in stub.requests[0]["headers"]
    assert "logprobs" not in stub.requests[0]["body"]  # only when asked for


def test_server_without_token_ids_falls_back_to_tokenizing(stub, tokenizer_dir, no_keys):
    stub.reply = (200, choice(text="Hello world", logprobs={"token_logprobs": [-1.0, -2.0]}))
    model = load_model(f"openai:m@{stub.url}", tokenizer=tokenizer_dir)
    [gen] = model.generate([[1, 2, 3]], GREEDY)
    tok = model.tokenizer
    assert gen.token_ids == [
        *tok("Hello world", add_special_tokens=False)["input_ids"],
        tok.eos_token_id,
    ]
    assert gen.text == "Hello world" and gen.finish_reason == "stop"
    assert gen.logprobs is None  # no longer aligned with the ids


def test_length_and_stripped_eos(stub, tokenizer_dir, no_keys):
    stub.reply = (
        200,
        {"choices": [{"text": "a b", "finish_reason": "length", "token_ids": [64, 65]}]},
    )
    model = load_model(f"openai:m@{stub.url}", tokenizer=tokenizer_dir)
    [gen] = model.generate([[1]], GREEDY)
    assert gen.finish_reason == "length" and gen.token_ids == [64, 65]
    stub.reply = (200, choice(token_ids=[64, 65], logprobs={"token_logprobs": [-1.0, -1.0]}))
    [gen] = model.generate([[1]], GREEDY)
    assert gen.token_ids == [64, 65, model.tokenizer.eos_token_id]


def test_http_error_is_one_line_scerror(stub, tokenizer_dir, no_keys):
    stub.reply = (401, {"error": {"message": "Incorrect API key\nprovided", "type": "auth"}})
    model = load_model(f"openai:m@{stub.url}", tokenizer=tokenizer_dir)
    with pytest.raises(ScError) as info:
        model.generate([[1], [2]], GREEDY)
    message = str(info.value)
    assert "\n" not in message
    assert f"{stub.url}/completions" in message and "HTTP 401" in message
    assert "Incorrect API key provided" in message


def test_timeout_is_scerror(stub, tokenizer_dir, no_keys):
    stub.delay = 3
    model = load_model(f"openai:m@{stub.url}", tokenizer=tokenizer_dir, timeout=0.5)
    with pytest.raises(ScError, match=r"did not answer within 0.5s"):
        model.generate([[1]], GREEDY)


def test_connection_refused_is_one_line_scerror(tokenizer_dir, no_keys):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    model = load_model(f"openai:m@{url}", tokenizer=tokenizer_dir, timeout=5)
    with pytest.raises(ScError) as info:
        model.generate([[1, 2]], GREEDY)
    message = str(info.value)
    assert "\n" not in message and url in message and "refused" in message.lower()


def test_bad_specs(tokenizer_dir, no_keys):
    with pytest.raises(ScError, match="no model name"):
        load_model("openai:@http://127.0.0.1:1/v1", tokenizer=tokenizer_dir)
    with pytest.raises(ScError, match="not an http"):
        load_model("openai:m@ftp://example.org", tokenizer=tokenizer_dir)
    with pytest.raises(ScError, match="MISSING_KEY_VAR"):
        load_model(
            "openai:m@http://127.0.0.1:1/v1", tokenizer=tokenizer_dir, api_key_env="MISSING_KEY_VAR"
        )
    with pytest.raises(ScError, match="tokenizer=PATH"):
        load_model(
            "openai:m@http://127.0.0.1:1/v1", tokenizer=str(Path(shutil.__file__).parent / "nope")
        )
