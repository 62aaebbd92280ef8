"""Every text-encoder backend computes the same thing as the float32 reference (``torch``):
same shape, unit rows, per-row cosine ≥ 0.99 on real WordNet glosses; the sidecar's
description names the backend, its library version and the precision used."""

import numpy as np
import pytest

from core.encoders import BACKENDS, DEFAULT_BACKEND, get_encoder
from curate.defaults import load_wordnet
from curate.embedding import embed_texts
from curate.errors import CurateError

MIN_COS = {"torch": 0.9999, "openvino": 0.999, "openvino-int8": 0.99, "onnx": 0.9999,
           "onnx-int8": 0.98}


@pytest.fixture(scope="module")
def glosses() -> list[str]:
    texts = load_wordnet(None).select("gloss").head(96)["gloss"].to_list()
    return [*texts, "", "a", "word " * 400]   # empty, one token, truncated at 256 tokens


@pytest.fixture(scope="module")
def reference(glosses) -> np.ndarray:
    return embed_texts(glosses, backend="torch")


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_backend_matches_float32_reference(backend, glosses, reference):
    v = embed_texts(glosses, backend=backend, chunk_size=40)     # several chunks
    assert v.shape == reference.shape and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert (v * reference).sum(axis=1).min() >= MIN_COS[backend]


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_no_texts_is_an_empty_array(backend):
    v = get_encoder(backend).encode([])
    assert v.shape == (0, 384) and v.dtype == np.float32


def test_token_buckets_feed_what_the_tokenizer_pads(glosses):
    """Each batch is the tokenizer's own padded encoding of its texts (ids, mask, types),
    cut from one pass over the chunk; batches are in token-count order and cover every
    text once."""
    enc = get_encoder("openvino")
    seen, last = [], 0
    for rows, feed in enc.batches(glosses, 16):
        ref = enc.tokenizer([glosses[i] for i in rows], padding=True, truncation=True,
                            max_length=enc.max_length, return_tensors="np")
        for k in ("input_ids", "attention_mask", "token_type_ids"):
            assert np.array_equal(feed[k], ref[k]) and feed[k].dtype == np.int64
        lengths = feed["attention_mask"].sum(axis=1)
        assert lengths.min() >= last
        last = lengths.max()
        seen += rows.tolist()
    assert sorted(seen) == list(range(len(glosses)))


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_backend_describes_itself(backend):
    d = get_encoder(backend).describe()
    assert d["backend"] == backend and d["dtype"]
    assert len(d) >= 3          # plus the library that ran it and its version


def test_int8_openvino_is_default_and_records_its_precision():
    assert DEFAULT_BACKEND == "openvino-int8"
    assert get_encoder("openvino").describe()["dtype"] in ("bf16", "f32")
    d = get_encoder().describe()
    assert d["backend"] == "openvino-int8" and "groups of 128" in d["dtype"]


def test_int8_weights_are_per_output_channel_golden():
    """W (in=2, out=3): each output column gets s_j = max_i |W_ij| / 127 and Q = round(W / s),
    so the largest entry of every column maps to ±127 and the network's matmul sees Q·s."""
    import openvino as ov
    import openvino.opset13 as ops

    from core.encoders import int8_weights

    W = np.array([[1.0, -0.5, 0.0], [0.25, 2.0, 0.0]], dtype=np.float32)
    x = ops.parameter([2, 2], np.float32)
    model = int8_weights(ov.Model([ops.matmul(x, ops.constant(W), False, False)], [x]))
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled(np.eye(2, dtype=np.float32))[0]            # the rows of Q·s
    s = np.abs(W).max(axis=0) / 127
    s = np.where(s > 0, s, 1.0).astype(np.float16).astype(np.float32)
    assert np.allclose(got, np.round(W / s) * s, atol=1e-6)
    assert np.allclose(got, [[1.0, -0.5039, 0.0], [0.2520, 2.0, 0.0]], atol=1e-3)
    # the same weight stored transposed (out, in) with transpose_b: the same scales
    model = int8_weights(ov.Model([ops.matmul(x, ops.constant(W.T.copy()), False, True)], [x]))
    got_t = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(
        np.eye(2, dtype=np.float32))[0]
    assert np.array_equal(got_t, got)


def test_openvino_leaves_the_calling_thread_on_every_core(glosses):
    """OpenVINO pins its inference threads by default, the caller's included: everything
    the process ran after embedding (proxy training, selection) was then held to one core.
    Pinning is off; the caller's CPU set is unchanged."""
    import os

    before = os.sched_getaffinity(0)
    get_encoder("openvino").encode(glosses)
    assert os.sched_getaffinity(0) == before


def test_order_of_texts_is_kept(glosses, reference):
    """Length buckets sort inside a chunk; rows must come back in the caller's order."""
    rev = embed_texts(glosses[::-1], backend="openvino")
    assert (rev[::-1] * reference).sum(axis=1).min() >= MIN_COS["openvino"]


@pytest.mark.parametrize("kwargs", [{"backend": "tf"}, {"batch_size": 0},
                                    {"backend": "openvino", "device": "cuda"}])
def test_bad_backend_arguments_are_one_line_errors(kwargs):
    with pytest.raises(CurateError) as err:
        embed_texts(["x"], **kwargs)
    assert len(str(err.value).splitlines()) == 1




def test_a_stream_gives_the_vectors_of_one_list_however_it_is_batched(glosses):
    """``embed_stream`` cuts its chunks from the stream, so how the input arrives (a
    Parquet file's record batches) changes nothing: byte-identical to one list."""
    from core.encoders import embed_stream

    whole = embed_texts(glosses, backend="openvino", chunk_size=32)
    parts = [glosses[:5], [], glosses[5:6], glosses[6:70], glosses[70:]]
    out = list(embed_stream(iter(parts), backend="openvino", chunk_size=32))
    assert [len(v) for v in out] == [32, 32, 32, 3]       # chunks, not input batches
    assert np.concatenate(out).tobytes() == whole.tobytes()


def test_embed_dataset_streams_the_column_to_the_store(tmp_path, wordnet_home):
    """The store path (record batches of the text column → encoder → ``vectors.npy``
    appended batch by batch) stores exactly what ``embed_texts`` gives for the column."""
    import shutil

    from curate.embedding import embed_dataset
    from stores import Store

    root = tmp_path / "wn"
    shutil.copytree(wordnet_home, root)
    st = Store.open(root)
    texts = st.samples("wordnet", ["gloss"])["gloss"].fill_null("").to_list()
    embed_dataset(st, "wordnet", backend="openvino")
    stored, meta = st.embeddings("wordnet")
    assert isinstance(stored, np.memmap) and meta.backend["executor"] == "local"
    assert np.asarray(stored).tobytes() == embed_texts(texts, backend="openvino").tobytes()


def test_query_backend_follows_the_index():
    from core.encoders import query_backend

    assert query_backend({"encoder_backend": "torch"}) == "torch"
    assert query_backend({"encoder_backend": None}) == DEFAULT_BACKEND       # ingested
    assert query_backend({}) == DEFAULT_BACKEND                              # older index
    assert query_backend({"encoder_backend": "gone"}) == DEFAULT_BACKEND


def test_text_queries_use_the_encoder_of_the_indexed_items(tmp_path, wordnet_home,
                                                            monkeypatch):
    """An index records its items' encoder backend; the service embeds a text query with
    that same backend (not the default), so query and items come from one encoder."""
    import shutil

    from curate.embedding import embed_dataset
    from retrieval import build_index
    from retrieval.fanout import FanoutEngine
    from retrieval.index import load_index
    from stores import Store

    shutil.copytree(wordnet_home, tmp_path / "s")
    st = Store.open(tmp_path / "s")
    embed_dataset(st, "wordnet", backend="torch")
    assert build_index(st, "wordnet", factory="Flat", name="flat")["encoder_backend"] == "torch"
    texts = ("a domesticated carnivorous mammal", "dog", "canine")
    want = embed_texts(list(texts), backend="torch").tobytes()
    for micro_batch in (False, True):          # direct, and through the shared batcher
        got = FanoutEngine(st, "flat", micro_batch=micro_batch)._embed(texts, None)
        assert got.tobytes() == want
    assert want != embed_texts(list(texts), backend=DEFAULT_BACKEND).tobytes()
    # an index built before the field existed: the items' sidecar says torch
    import retrieval.fanout as fanout

    def older(store, name):
        index = load_index(store, name)
        index.meta.pop("encoder_backend")
        return index

    monkeypatch.setattr(fanout, "load_index", older)
    engine = FanoutEngine(st, "flat")
    assert "encoder_backend" not in engine.index.meta
    assert engine._embed(texts, None).tobytes() == want
