"""The ``openai`` inference backend: any OpenAI-compatible ``/completions`` server.

Spec ``openai:MODEL@URL``, e.g. ``openai:smollm2@http://127.0.0.1:8000/v1`` for
``vllm serve ... --served-model-name smollm2``. Without ``@URL`` the URL comes from the
``base_url`` option, else ``SC_OPENAI_BASE_URL``, else ``http://127.0.0.1:8000/v1``.

Prompts travel as token ids (``"prompt": [ids]``), one request per prompt, a few at a time, so
the chat template is rendered here with the model's own tokenizer: by default
``AutoTokenizer.from_pretrained(resolve_model(MODEL))``, or the ``tokenizer=PATH`` option when
the served name is not loadable (a hosted model's name, say).

Token ids: the request asks for vLLM's ``return_token_ids`` extension, and the completion's ids
are used exactly as the server generated them. A server without that extension (llama.cpp,
a hosted API) returns text only; the text is then re-tokenised with the tokenizer, which may not
give the ids the model sampled (and the log-probabilities are dropped where their count no
longer matches). Pass ``return_token_ids=False`` for a server that rejects the unknown field.
When the model ended its turn (``finish_reason`` ``stop``) and the ids lack the end-of-turn
token, it is appended, so ids end as they do with the other backends.

Log-probabilities (asked for with ``SamplingParams(logprobs=True)``) are those the server
reports for each sampled token (``logprobs: 1``); a vLLM
server reports the raw model distribution unless started with
``--logprobs-mode processed_logprobs`` (after temperature and top-p, as the transformers
backend reports them).

The API key is read from an environment variable, never from options (they are written to run
configs): ``api_key_env=NAME`` if given, else ``SC_OPENAI_API_KEY``, else ``OPENAI_API_KEY``;
without one no ``Authorization`` header is sent. Only the standard library is used (urllib).
"""

from __future__ import annotations

import itertools
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from sc_core import hookimpl
from sc_core.errors import ScError
from sc_core.models import (
    Generation,
    ModelBackend,
    Request,
    SamplingParams,
    Then,
    generate_in_order,
    resolve_model,
)

DEFAULT_URL = "http://127.0.0.1:8000/v1"
KEY_VARIABLES = ("SC_OPENAI_API_KEY", "OPENAI_API_KEY")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def split_spec(model: str, base_url: str | None = None) -> tuple[str, str]:
    """``MODEL@URL`` into (model, url without a trailing slash)."""
    name, at, url = model.partition("@")
    if not at:
        url = base_url or os.environ.get("SC_OPENAI_BASE_URL") or DEFAULT_URL
    if not name:
        raise ScError(f"openai model spec {model!r} has no model name; use openai:MODEL@URL")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ScError(f"openai model spec {model!r}: {url!r} is not an http(s) URL")
    return name, url.rstrip("/")


class OpenAIBackend(ModelBackend):
    """A model behind an OpenAI-compatible server (vLLM, SGLang, llama.cpp, a hosted API).

    Options: ``tokenizer`` (path or hub id of the chat tokenizer), ``base_url``,
    ``api_key_env``, ``timeout`` (seconds per request, default 600), ``concurrency``
    (requests in flight, default 8), ``return_token_ids`` (default True; vLLM's extension).
    """

    name = "openai"
    supports_regex = True  # vLLM servers; others reject the field

    def __init__(
        self,
        model: str,
        *,
        tokenizer: str | None = None,
        base_url: str | None = None,
        api_key_env: str | None = None,
        timeout: float = 600.0,
        concurrency: int = 8,
        return_token_ids: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(model, **options)
        self.served_name, self.url = split_spec(model, base_url)
        self.timeout = float(timeout)
        self.concurrency = max(1, int(concurrency))
        self.return_token_ids = bool(return_token_ids)
        variables = (api_key_env,) if api_key_env else KEY_VARIABLES
        self.api_key = next((os.environ[v] for v in variables if os.environ.get(v)), None)
        if api_key_env and self.api_key is None:
            raise ScError(f"api_key_env={api_key_env!r}: that environment variable is not set")
        host = urllib.parse.urlsplit(self.url).hostname or ""
        handlers = [urllib.request.ProxyHandler({})] if host in LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)
        self._tokenizer_source = tokenizer or resolve_model(self.served_name)
        self._tokenizer: Any = None
        self._load_tokenizer()

    def _load_tokenizer(self) -> None:
        from transformers import AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self._tokenizer_source)
        except Exception as error:
            raise ScError(
                f"openai backend: no tokenizer at {self._tokenizer_source!r} "
                f"({one_line(error, 160)}); pass the option tokenizer=PATH"
            ) from None

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def stop_ids(self) -> set[int]:
        ids = {self._tokenizer.eos_token_id}
        return {i for i in ids if i is not None}

    # -- HTTP -------------------------------------------------------------------------------

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON to ``{url}{path}``; every failure is an ScError with a one-line reason."""
        url = self.url + path
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = ""
            try:
                detail = error.read().decode(errors="replace")
                parsed = json.loads(detail)
                inner = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
                detail = inner.get("message", detail) if isinstance(inner, dict) else detail
            except Exception:  # not JSON: the body as text, else the status line's reason
                detail = detail or str(error.reason)
            raise ScError(
                f"model server {url} answered HTTP {error.code}: {one_line(detail)}"
            ) from None
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, TimeoutError):
                raise ScError(
                    f"model server {url} did not answer within {self.timeout:g}s"
                ) from None
            raise ScError(f"cannot reach the model server at {url}: {one_line(reason)}") from None
        except TimeoutError:
            raise ScError(f"model server {url} did not answer within {self.timeout:g}s") from None
        except OSError as error:  # connection reset mid-response and the like
            raise ScError(f"model server {url} failed: {one_line(error)}") from None
        try:
            return json.loads(payload)
        except ValueError:
            raise ScError(f"model server {url} answered with something that is not JSON") from None

    # -- generation -------------------------------------------------------------------------

    def request_body(self, prompt: list[int], params: SamplingParams, index: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.served_name,
            "prompt": list(prompt),
            "max_tokens": params.max_new_tokens,
            "temperature": max(float(params.temperature), 0.0),
            "top_p": params.top_p if params.temperature > 0 else 1.0,
            "n": 1,
        }
        if params.logprobs:
            body["logprobs"] = 1
        if params.seed is not None:
            body["seed"] = params.seed + index  # identical prompts in a batch still differ
        if self.return_token_ids:
            body["return_token_ids"] = True
        if params.regex is not None:
            body["structured_outputs"] = {"regex": params.regex}  # vLLM's extension
        return body

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        """One completion per prompt, in order; requests run ``concurrency`` at a time.
        ``params.regex`` is sent as vLLM's structured-outputs extension."""
        return generate_in_order(self, prompts, params)

    def generate_continuously(self, requests: list[Request], then: Then) -> None:
        """Up to ``concurrency`` requests in flight; a follow-up is sent as soon as ``then``
        returns it, so a server that batches continuously (vLLM) never waits for a wave."""
        order = itertools.count()  # seeds follow the order of this call's requests
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            running: dict[Future, Request] = {}

            def send(request: Request) -> None:
                body = self.request_body(request.prompt, request.params, next(order))
                running[pool.submit(self._complete, body)] = request

            try:
                for request in requests:
                    send(request)
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        for follow in then(running.pop(future), future.result()):
                            send(follow)
            finally:
                for future in running:  # an error: send nothing more
                    future.cancel()

    def _complete(self, body: dict[str, Any]) -> Generation:
        response = self.post("/completions", body)
        try:
            choice = response["choices"][0]
        except (KeyError, IndexError, TypeError):
            raise ScError(
                f"model server {self.url}/completions answered without choices: "
                f"{one_line(json.dumps(response), 200)}"
            ) from None
        return self.generation(choice)

    def generation(self, choice: dict[str, Any]) -> Generation:
        """A Generation from one ``choices[i]`` of a completions response."""
        text = choice.get("text") or ""
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        logprobs = (choice.get("logprobs") or {}).get("token_logprobs")
        ids = choice.get("token_ids")
        if ids is None:  # not a vLLM server: re-tokenise the text
            ids = self._tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = [int(token) for token in ids]
        stop = self.stop_ids()
        # The model ended its turn (stop_reason None means the EOS token, not a stop string):
        # keep ids ending with the end-of-turn token, as vLLM returns them.
        ended = finish == "stop" and choice.get("stop_reason") is None
        if ended and stop and (not ids or ids[-1] not in stop):
            ids.append(self._tokenizer.eos_token_id)
        if logprobs is not None:
            logprobs = [float(lp) if lp is not None else 0.0 for lp in logprobs]
            if len(logprobs) != len(ids):
                logprobs = None
        return Generation(token_ids=ids, text=text, logprobs=logprobs, finish_reason=finish)


@hookimpl
def register_models(register):
    register("openai", OpenAIBackend)
