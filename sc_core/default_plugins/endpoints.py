"""Several OpenAI-compatible servers of one model, used as one: the ``openai`` backend's
load balancing, failover and weight updates.

Each request goes to the live server with the fewest requests in flight (vLLM batches
continuously, so the least loaded server starts it soonest). A server that fails, unreachable,
a connection reset mid-answer, an HTTP 5xx, a timeout or an answer that is not JSON, is marked
down for the rest of the backend's life, and the request is sent again to another server, with
the same body (and so the same seed): no request is lost and no episode fails because one
server died. An HTTP 4xx is the request's own fault and fails it at once, as it would on any
server. When every server is down, the error names each one's reason.

Weights: a running ``vllm serve`` started with ``VLLM_SERVER_DEV_MODE=1`` and sc's worker
extension (``--worker-extension-cls sc_vllm.server.WeightReload``) reloads a checkpoint from its
own disk in place, through ``/collective_rpc`` (half a second to two for SmolLM2 on a CPU), so
the servers need not restart after a training iteration; see :meth:`Endpoints.load_weights`.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from sc_core.errors import ScError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
RELOAD = "sc_reload_weights"
START = (
    "start vllm serve with VLLM_SERVER_DEV_MODE=1 and "
    "--worker-extension-cls sc_vllm.server.WeightReload (pip install sc-vllm beside it)"
)


class ServerDown(ScError):
    """A server failed (not the request): another server may answer it."""


def one_line(text: Any, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def http_error_detail(error: urllib.error.HTTPError) -> str:
    """The message of an error answer: OpenAI's ``error.message``, else the body, else the
    status line's reason."""
    detail = ""
    try:
        detail = error.read().decode(errors="replace")
        parsed = json.loads(detail)
        inner = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
        detail = inner.get("message", detail) if isinstance(inner, dict) else detail
    except Exception:  # not JSON: the body as text, else the status line's reason
        detail = detail or str(error.reason)
    return one_line(detail)


def request_json(
    url: str,
    body: dict[str, Any] | None,
    *,
    headers: dict[str, str],
    timeout: float,
    method: str = "POST",
) -> Any:
    """Send JSON to ``url`` and return the parsed answer. A failure of the server is a
    :class:`ServerDown`, an HTTP 4xx an :class:`ScError`; both one line."""
    host = urllib.parse.urlsplit(url).hostname or ""
    handlers = [urllib.request.ProxyHandler({})] if host in LOOPBACK else []
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as error:
        kind = ServerDown if error.code >= 500 else ScError
        raise kind(
            f"model server {url} answered HTTP {error.code}: {http_error_detail(error)}"
        ) from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise ServerDown(f"model server {url} did not answer within {timeout:g}s") from None
        raise ServerDown(
            f"cannot reach the model server at {url}: {one_line(error.reason)}"
        ) from None
    except TimeoutError:
        raise ServerDown(f"model server {url} did not answer within {timeout:g}s") from None
    except (OSError, http.client.HTTPException) as error:  # reset or cut mid-answer
        raise ServerDown(f"model server {url} failed: {one_line(repr(error))}") from None
    try:
        return json.loads(payload) if payload else None
    except ValueError:
        raise ServerDown(f"model server {url} answered with something that is not JSON") from None


def split_urls(text: str) -> list[str]:
    """``URL1,URL2`` into URLs without trailing slashes; each must be http(s)."""
    urls = [url.strip().rstrip("/") for url in text.split(",") if url.strip()]
    for url in urls:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ScError(f"{url!r} is not an http(s) URL")
    if not urls:
        raise ScError("no server URL given")
    return urls


def server_root(url: str) -> str:
    """``http://host:port/v1`` -> ``http://host:port``: where vLLM's own endpoints are."""
    return url[: -len("/v1")] if url.endswith("/v1") else url


def is_checkpoint(path: str) -> bool:
    """Whether ``path`` is a local Hugging Face checkpoint a server can reload from."""
    folder = Path(path)
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


class Endpoints:
    """The servers of one model, balanced by load, failed over when one dies."""

    def __init__(self, urls: list[str], headers: dict[str, str], timeout: float):
        self.urls = list(dict.fromkeys(urls))
        self.headers = headers
        self.timeout = timeout
        self.in_flight: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        """Requests each server answered: who did the work."""
        self.down: dict[str, str] = {}
        """Each failed server's reason."""
        self._lock = threading.Lock()

    def call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        """One request to one server, no failover."""
        return request_json(url, body, headers=self.headers, timeout=self.timeout, method=method)

    def live(self) -> list[str]:
        with self._lock:
            return [url for url in self.urls if url not in self.down]

    def mark_down(self, url: str, reason: str) -> None:
        with self._lock:
            self.down.setdefault(url, reason)
            if len(self.down) == len(self.urls):
                raise ScError(self.all_down())

    def all_down(self) -> str:
        if len(self.urls) == 1:
            return self.down[self.urls[0]]
        reasons = "; ".join(self.down[url] for url in self.urls)
        return f"all {len(self.urls)} model servers failed: {reasons}"

    def _acquire(self) -> str:
        with self._lock:
            live = [url for url in self.urls if url not in self.down]
            if not live:
                raise ScError(self.all_down())
            url = min(live, key=lambda u: (self.in_flight[u], self.answered[u]))
            self.in_flight[url] += 1
            return url

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """``body`` to ``path`` on the least loaded live server, and on to the next one while
        servers fail; an :class:`ScError` once none is left."""
        while True:
            url = self._acquire()
            try:
                answer = self.call("POST", url + path, body)
            except ServerDown as error:
                self.mark_down(url, str(error))
                continue
            finally:
                with self._lock:
                    self.in_flight[url] -= 1
            with self._lock:
                self.answered[url] += 1
            return answer

    def served_names(self) -> set[str]:
        """The model names the live servers serve (``GET /models``); a server that does not
        answer is marked down."""
        names: set[str] = set()
        for url in self.live():
            try:
                answer = self.call("GET", url + "/models")
            except ServerDown as error:
                self.mark_down(url, str(error))
                continue
            names |= {str(model.get("id")) for model in (answer or {}).get("data", [])}
        return names

    def load_weights(self, checkpoint: str) -> list[str]:
        """Make every live server serve the weights in ``checkpoint``, a folder the servers
        can read (one file system, or the same path on each node); returns the servers that
        reloaded, skipping those that already serve it. A server that fails meanwhile is
        marked down: it must not go on serving the old weights.
        """
        if not is_checkpoint(checkpoint):  # a bad path kills the server's engine
            raise ScError(f"{checkpoint!r} is not a checkpoint folder with safetensors weights")
        reloaded = []
        for url in self.live():
            try:
                if self._reload(server_root(url), checkpoint):
                    reloaded.append(url)
            except ServerDown as error:
                self.mark_down(url, str(error))
        return reloaded

    def _reload(self, root: str, checkpoint: str) -> bool:
        """One server: pause after its running requests, reload in place, drop the prefix
        cache (computed by the old weights), record the checkpoint as the weight version,
        resume. False where it already serves ``checkpoint``."""
        try:
            version = (self.call("GET", root + "/weight_info") or {}).get("weight_version")
        except ServerDown:
            raise
        except ScError as error:  # 404: no development endpoints
            raise ScError(
                f"model server {root} cannot load new weights: {error}; {START}"
            ) from None
        if version == checkpoint:
            return False
        self.call("POST", root + "/pause?mode=wait")
        try:
            rpc = {"method": RELOAD, "kwargs": {"weights_path": checkpoint}}
            try:
                self.call("POST", root + "/collective_rpc", rpc)
            except ServerDown as error:
                if f"attribute '{RELOAD}'" in str(error):
                    raise ScError(f"model server {root} has no {RELOAD}; {START}") from None
                raise
            self.call("POST", root + "/reset_prefix_cache")
            self.call("POST", root + "/update_weight_version", {"new_version": checkpoint})
        finally:
            self.call("POST", root + "/resume")
        return True
