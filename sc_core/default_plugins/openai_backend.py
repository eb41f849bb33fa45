"""The ``openai`` inference backend: any OpenAI-compatible ``/completions`` server, or several.

Spec ``openai:MODEL@URL``, e.g. ``openai:smollm2@http://127.0.0.1:8000/v1`` for
``vllm serve ... --served-model-name smollm2``. Without ``@URL`` the URL comes from the
``base_url`` option, else ``SC_OPENAI_BASE_URL``, else ``http://127.0.0.1:8000/v1``.

Several servers of the same model: ``openai:MODEL@URL1,URL2`` (or commas in ``base_url`` /
``SC_OPENAI_BASE_URL``). Each request goes to the least loaded live server; a server that dies
has its requests retried on the others (:mod:`sc_core.default_plugins.endpoints`).

New weights: ``openai:CHECKPOINT@URLS``, where ``CHECKPOINT`` is a local checkpoint folder
that the servers do not serve under that name, makes each server reload it in place (vLLM
servers started with ``VLLM_SERVER_DEV_MODE=1`` and ``--worker-extension-cls
sc_vllm.server.WeightReload``) and then asks them for the name they serve. ``sc run`` names
its new checkpoint so after each training iteration.

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
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from sc_core import hookimpl
from sc_core.default_plugins.endpoints import Endpoints, is_checkpoint, one_line, split_urls
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


def split_spec(model: str, base_url: str | None = None) -> tuple[str, list[str]]:
    """``MODEL@URL[,URL...]`` into (model, the servers' URLs without trailing slashes)."""
    name, at, urls = model.partition("@")
    if not at:
        urls = base_url or os.environ.get("SC_OPENAI_BASE_URL") or DEFAULT_URL
    if not name:
        raise ScError(f"openai model spec {model!r} has no model name; use openai:MODEL@URL")
    try:
        return name, split_urls(urls)
    except ScError as error:
        raise ScError(f"openai model spec {model!r}: {error}") from None


class OpenAIBackend(ModelBackend):
    """A model behind OpenAI-compatible servers (vLLM, SGLang, llama.cpp, a hosted API).

    Options: ``tokenizer`` (path or hub id of the chat tokenizer), ``base_url``,
    ``api_key_env``, ``timeout`` (seconds per request, default 600), ``concurrency``
    (requests in flight, default 8 per server), ``return_token_ids`` (default True; vLLM's
    extension).
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
        concurrency: int | None = None,
        return_token_ids: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(model, **options)
        self.served_name, urls = split_spec(model, base_url)
        self.timeout = float(timeout)
        self.concurrency = max(1, int(concurrency or 8 * len(urls)))
        self.return_token_ids = bool(return_token_ids)
        variables = (api_key_env,) if api_key_env else KEY_VARIABLES
        api_key = next((os.environ[v] for v in variables if os.environ.get(v)), None)
        if api_key_env and api_key is None:
            raise ScError(f"api_key_env={api_key_env!r}: that environment variable is not set")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.endpoints = Endpoints(urls, headers, self.timeout)
        self._tokenizer_source = tokenizer or resolve_model(self.served_name)
        self._tokenizer: Any = None
        self._load_tokenizer()
        if is_checkpoint(self.served_name):
            self.serve_checkpoint(self.served_name)

    @classmethod
    def weights_of(cls, model: str) -> str:
        """The weights a spec's model part names: ``MODEL`` of ``MODEL@URLS``."""
        return model.partition("@")[0]

    @classmethod
    def with_weights(cls, model: str, checkpoint: str) -> str:
        """The spec's model part with ``checkpoint`` for weights, on the same servers."""
        _, at, urls = model.partition("@")
        return f"{checkpoint}{at}{urls}"

    def serve_checkpoint(self, checkpoint: str) -> None:
        """Where no server serves a model named ``checkpoint``: make every server load its
        weights, and send requests to the one name they all serve."""
        served = self.endpoints.served_names()
        if checkpoint in served:
            return  # vllm serve CHECKPOINT: already its weights
        if len(served) != 1:
            raise ScError(
                f"the model servers serve {sorted(served)}; to load {checkpoint!r} into them "
                "each must serve one model, under one name"
            )
        self.endpoints.load_weights(checkpoint)
        self.served_name = served.pop()

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
        """POST JSON to ``path`` on the least loaded live server, failing over to the others;
        every failure is an ScError with a one-line reason."""
        answer = self.endpoints.post(path, body)
        if not isinstance(answer, dict):
            raise ScError(f"model server answered {path} with {one_line(answer, 200)}")
        return answer

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
                "a model server answered /completions without choices: "
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
