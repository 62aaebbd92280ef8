"""The service's limits: body size, readiness, deadlines and concurrency slots, shared encoder
calls, strict request fields and the library checks behind them."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from curate.cli import main
from curate.errors import CurateError, DeadlineExceededError, InvalidParameterError
from stores import Store

INDEX = "svc-limits"


@pytest.fixture(scope="module")
def home(wordnet_home):
    """The WordNet sample with a flat index and an untrained teacher and diffusion model."""
    import torch

    from retrieval.diffusion import DiffusionConfig, SetDiffusion, save_diffusion
    from retrieval.index import load_index
    from retrieval.teacher import Teacher
    from stores import files

    st = Store.open(wordnet_home)
    if INDEX not in st.indices():
        assert main(["--store", str(wordnet_home), "index", "build", "--name", INDEX,
                     "--json"]) == 0
    model = SetDiffusion(DiffusionConfig(dim=384, k=5, sigma_data=0.05, width=16, layers=1),
                         torch.Generator().manual_seed(0))
    diffusion = save_diffusion(st, model, {"index": INDEX, "k": 5})
    teacher = Teacher(load_index(st, INDEX), np.asarray(st.embeddings("wordnet")[0]), k=5)
    teacher_id = st.write_model("teacher", lambda folder: files.atomic_write(
        folder / "policy.pt", lambda p: torch.save(teacher.policy.state_dict(), p)),
        {"index": INDEX, "k": 5, "sigma": teacher.sigma, "tau": teacher.tau,
         "beta": teacher.beta, "seed": 0})
    return wordnet_home, teacher_id, diffusion


def _vector(i: int = 0) -> list[float]:
    v = [0.0] * 384
    v[i] = 1.0
    return v


def _one_line(r) -> str:
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    return detail


@pytest.fixture(scope="module")
def client(home):
    from retrieval.service import create_app

    return TestClient(create_app(home[0], INDEX, max_k=20, max_body_bytes=4096))


# -- body size -----------------------------------------------------------------------------

def test_body_over_the_limit_is_a_413(client):
    r = client.post("/v1/fanout", json={"query": "x" * 5000})
    assert r.status_code == 413 and "larger than 4096 bytes" in _one_line(r)

    def chunks():                     # no Content-Length: counted while it streams in
        yield b'{"query": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}'

    r = client.post("/v1/fanout", content=chunks(), headers={"content-type":
                                                             "application/json"})
    assert r.status_code == 413
    r = client.post("/v1/fanout", json={"query": "a dog", "k": 3})
    assert r.status_code == 200 and len(r.json()["items"]) == 3


# -- readiness -------------------------------------------------------------------------------

def test_encoder_and_models_are_loaded_before_the_app_is_ready(home):
    from retrieval.service import create_app

    root, teacher, diffusion = home
    health = TestClient(create_app(root, INDEX)).get("/healthz").json()
    assert health["status"] == "ok" and health["encoder"] is True
    assert {teacher, diffusion} <= set(health["models"])       # every model of the index
    c = TestClient(create_app(root, INDEX, preload_models=[]))
    assert c.get("/healthz").json()["models"] == []
    r = c.post("/v1/fanout", json={"vector": _vector(), "k": 5, "method": "diffusion",
                                   "model": diffusion})
    assert r.status_code == 200                                 # loaded on demand
    assert c.get("/healthz").json()["models"] == [diffusion]
    with pytest.raises(CurateError, match="not found"):
        create_app(root, INDEX, preload_models=["teacher-nope"])


def test_background_load_answers_503_until_ready(home, monkeypatch):
    from retrieval.fanout import FanoutEngine
    from retrieval.service import create_app

    release = threading.Event()
    warm_up = FanoutEngine.warm_up

    def slow(self, models=None):
        release.wait(60)
        return warm_up(self, models)

    monkeypatch.setattr(FanoutEngine, "warm_up", slow)
    c = TestClient(create_app(home[0], INDEX, preload_models=[], background_load=True))
    r = c.get("/healthz")
    assert r.status_code == 503 and "still loading" in _one_line(r)
    assert c.post("/v1/fanout", json={"query": "a dog"}).status_code == 503
    release.set()
    give_up = time.monotonic() + 60
    while c.get("/healthz").status_code != 200 and time.monotonic() < give_up:
        time.sleep(0.05)
    assert c.post("/v1/fanout", json={"query": "a dog", "k": 2}).status_code == 200
    broken = TestClient(create_app(home[0], INDEX, preload_models=["teacher-nope"],
                                   background_load=True))
    while (r := broken.get("/healthz")).json()["detail"].startswith("the service is still"):
        time.sleep(0.05)
    assert r.status_code == 503 and "loading failed" in _one_line(r)


# -- deadlines and slots ---------------------------------------------------------------------

def test_a_504_keeps_its_slot_until_the_work_stops():
    """At the deadline the client gets a 504, but the next request (one slot) starts only
    when the overrunning work has really ended."""
    from fastapi import HTTPException

    from retrieval.service import Runner

    class Idle:
        def warm_up(self, models):
            return {}

    runner = Runner(Idle, [], max_concurrency=1, background=False)
    log: dict[str, float] = {}

    def work(deadline, name):
        log[f"start {name}"] = time.monotonic()
        while time.monotonic() < deadline + 0.3:        # stops 0.3 s after its deadline
            time.sleep(0.01)
        log[f"end {name}"] = time.monotonic()
        raise DeadlineExceededError("stopped")

    async def scenario():
        first = asyncio.ensure_future(runner.run(work, "a", timeout_s=0.2))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(runner.run(work, "b", timeout_s=0.5))
        with pytest.raises(HTTPException) as cut:
            await first
        log["504 a"], busy = time.monotonic(), runner.in_flight
        with pytest.raises(HTTPException):
            await second
        return cut.value.status_code, busy

    status, busy = asyncio.run(scenario())
    runner.pool.shutdown(wait=True)
    assert status == 504 and busy == 1                  # the 504 came while "a" still ran
    assert log["504 a"] < log["end a"] <= log["start b"]
    assert runner.in_flight == 0


def test_a_cut_off_batch_stops_soon_and_never_exceeds_the_slots(home):
    import httpx

    from retrieval.service import create_app

    app = create_app(home[0], INDEX, preload_models=[], max_concurrency=2, timeout_s=0.3)
    runner = app.state.runner
    batch = {"requests": [{"query": f"query number {i}", "k": 5, "method": "mmr"}
                          for i in range(256)]}        # seconds of work, one request
    seen, done = [], threading.Event()

    def watch():
        while not done.is_set():
            seen.append(runner.in_flight)
            time.sleep(0.002)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
            t0 = time.monotonic()
            rs = await asyncio.gather(*[c.post("/v1/fanout/batch", json=batch)
                                        for _ in range(4)])
            return rs, time.monotonic() - t0

    threading.Thread(target=watch, daemon=True).start()
    rs, took = asyncio.run(scenario())
    t_answered = time.monotonic()
    while runner.in_flight and time.monotonic() - t_answered < 30:
        time.sleep(0.01)
    drained = time.monotonic() - t_answered
    done.set()
    assert [r.status_code for r in rs] == [504] * 4 and "longer than 0.3 s" in _one_line(rs[0])
    assert max(seen) == 2 and runner.in_flight == 0
    assert drained < 3.0, drained                # stopped between requests, not after 256


def test_deadlines_in_the_engine_and_the_micro_batcher(home):
    from retrieval.batching import MicroBatcher
    from retrieval.fanout import FanoutEngine

    engine = FanoutEngine(Store.open(home[0]), INDEX)
    with pytest.raises(DeadlineExceededError, match="before it started"):
        engine.query(vector=_vector(), k=3, deadline=time.monotonic() - 1)
    seen = []

    def slow(Q):
        seen.extend(Q[:, 0].tolist())
        time.sleep(0.3)
        return Q

    mb = MicroBatcher(slow, max_wait_s=0.0)
    busy = threading.Thread(target=mb.submit, args=(np.full(2, 1.0),))
    busy.start()
    time.sleep(0.05)                              # the worker is inside slow() now
    with pytest.raises(DeadlineExceededError):
        mb.submit(np.full(2, 2.0), deadline=time.monotonic() + 0.05)
    busy.join()
    assert np.array_equal(mb.submit(np.full(2, 3.0)), np.full(2, 3.0))
    assert seen == [1.0, 3.0]                     # the item given up on never ran


def test_a_deadline_scope_belongs_to_its_thread_and_nests():
    from core.deadline import checkpoint, deadline_scope

    checkpoint("outside any scope")                      # no deadline: a no-op
    with deadline_scope(time.monotonic() - 1):
        with pytest.raises(DeadlineExceededError, match=r"past its deadline \(a step\)"):
            checkpoint("a step")
        other: list[BaseException | None] = []

        def elsewhere():
            try:
                checkpoint("another thread")
                other.append(None)
            except DeadlineExceededError as exc:
                other.append(exc)

        t = threading.Thread(target=elsewhere)
        t.start()
        t.join()
        assert other == [None]                           # the scope is this thread's only
        with deadline_scope(None), pytest.raises(DeadlineExceededError):
            checkpoint("an inner scope without its own keeps the outer deadline")
        with deadline_scope(time.monotonic() + 60), pytest.raises(DeadlineExceededError):
            checkpoint("a later inner deadline does not extend the outer one")
    with deadline_scope(time.monotonic() + 60):
        with deadline_scope(time.monotonic() - 1), pytest.raises(DeadlineExceededError):
            checkpoint("an earlier inner deadline wins")
        checkpoint("the outer deadline is back")
    checkpoint("after the scope")


@pytest.mark.parametrize("method, params", [
    ("ascent", {"sweeps": 3}), ("dpp", {}), ("teacher", {"rounds": 2}),
    ("diffusion", {"steps": 3}), ("diffusion", {})])       # {}: the traced default sampler
def test_every_long_search_stops_inside_its_loop(home, method, params):
    """Each long loop checks the deadline once a step: inside an expired scope the search
    raises instead of running to the end (the service's worker is then free)."""
    from core.deadline import deadline_scope
    from retrieval.fanout import FanoutEngine

    engine = FanoutEngine(Store.open(home[0]), INDEX, micro_batch=False)
    model = {"teacher": home[1], "diffusion": home[2]}.get(method)
    retr = engine.retriever(method, model, **params)
    V = np.asarray([_vector(3)] * (retr.n_views or 1), dtype=np.float32)[None]
    retr.retrieve(V, 5)                                   # runs to the end without one
    with deadline_scope(time.monotonic() - 1), pytest.raises(
            DeadlineExceededError, match="past its deadline"):
        retr.retrieve(V, 5)


def test_a_trace_cut_off_by_a_deadline_is_not_cached_as_a_failure():
    import torch

    from core.deadline import deadline_scope
    from retrieval.diffusion import DiffusionConfig, SetDiffusion

    model = SetDiffusion(DiffusionConfig(dim=8, k=3, sigma_data=0.05, width=8, layers=1),
                         torch.Generator().manual_seed(0)).eval()
    with deadline_scope(time.monotonic() - 1), pytest.raises(DeadlineExceededError):
        model.compiled_sampler(4, 1.0, "cpu")
    assert model.compiled_sampler(4, 1.0, "cpu") is not None     # traced, not eager for good


@pytest.mark.parametrize("kind", ["teacher", "diffusion"])
def test_a_stale_model_does_not_stop_the_default_preload(home, monkeypatch, kind):
    from core.errors import SchemaError
    from retrieval.diffusion import SetDiffusion
    from retrieval.fanout import FanoutEngine
    from retrieval.teacher import FanoutPolicy

    def stale(self, state, *args, **kwargs):
        raise RuntimeError('Error(s) in loading state_dict:\n\tMissing key(s): "w"')

    monkeypatch.setattr({"teacher": FanoutPolicy, "diffusion": SetDiffusion}[kind],
                        "load_state_dict", stale)
    model_id = {"teacher": home[1], "diffusion": home[2]}[kind]
    loaded = FanoutEngine(Store.open(home[0]), INDEX).warm_up()
    assert model_id not in loaded["models"]
    assert "unreadable" in loaded["skipped"][model_id] and "\n" not in loaded["skipped"][model_id]
    with pytest.raises(SchemaError, match=f"{kind} model .* train it again"):
        FanoutEngine(Store.open(home[0]), INDEX).warm_up([model_id])


def test_the_engine_runs_the_retrieval_inside_the_requests_deadline(home, monkeypatch):
    from core import deadline as dl
    from retrieval.baselines import MMRRetriever
    from retrieval.fanout import FanoutEngine

    seen = []
    real = MMRRetriever._retrieve

    def spy(self, *args, **kwargs):
        seen.append(dl._DEADLINE.get())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MMRRetriever, "_retrieve", spy)
    engine = FanoutEngine(Store.open(home[0]), INDEX, micro_batch=False)
    until = time.monotonic() + 60
    engine.query(vector=_vector(), k=3, method="mmr", deadline=until)
    engine.query(vector=_vector(), k=3, method="mmr")
    assert seen == [until, None] and dl._DEADLINE.get() is None


# -- shared encoder calls --------------------------------------------------------------------

def test_concurrent_text_queries_share_encoder_calls(home):
    from retrieval.fanout import FanoutEngine

    st = Store.open(home[0])
    shared, alone = FanoutEngine(st, INDEX, micro_batch=True), FanoutEngine(st, INDEX)
    texts = [f"a kind of {w}" for w in ("dog", "tree", "ship", "song", "city", "bird",
                                        "metal", "game", "tool", "fish", "cloud", "coin")]
    out: dict[str, dict] = {}
    threads = [threading.Thread(target=lambda t=t: out.__setitem__(t, shared.query(
        text=t, k=5))) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shared.batchers[("encoder",)].batches < len(texts)
    for t in texts:
        ref = alone.query(text=t, k=5)
        assert [i["row_idx"] for i in out[t]["items"]] == [i["row_idx"] for i in ref["items"]]
        assert np.allclose([i["score"] for i in out[t]["items"]],
                           [i["score"] for i in ref["items"]], atol=1e-4)


def test_concurrent_default_ascent_queries_share_one_call(home):
    """``ascent`` is ``batched``: concurrent default-setting queries run as shared calls and
    get what they get alone; other settings (refine = 1 sweep) run on their own."""
    from retrieval.fanout import FanoutEngine

    st = Store.open(home[0])
    shared, alone = FanoutEngine(st, INDEX, micro_batch=True), FanoutEngine(st, INDEX)
    V = np.asarray(alone.vectors[:12])
    out: dict[int, dict] = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, shared.query(
        vector=V[i], k=5, method="ascent", objectives=False))) for i in range(len(V))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    key = ("ascent", None, 5)
    assert shared.batchers[key].items == len(V) and shared.batchers[key].batches < len(V)
    for i in range(len(V)):
        ref = alone.query(vector=V[i], k=5, method="ascent", objectives=False)
        assert [x["row_idx"] for x in out[i]["items"]] == [x["row_idx"] for x in ref["items"]]
    shared.query(vector=V[0], k=5, method="ascent", model="ignored", objectives=False)
    assert shared.batchers[key].items == len(V) + 1 and len(shared.batchers) == 1
    shared.query(vector=V[0], k=5, method="ascent", refine=1, objectives=False)
    assert shared.batchers[key].items == len(V) + 1


def test_concurrent_queries_share_objectives_calls(home):
    """With ``micro_batch``, the objectives of concurrent default-weight queries are scored in
    shared calls (one pool search and ``score_sets`` over the batch) and equal what each gets
    alone; a request with its own weights scores on its own."""
    from retrieval.fanout import FanoutEngine

    st = Store.open(home[0])
    shared, alone = FanoutEngine(st, INDEX, micro_batch=True), FanoutEngine(st, INDEX)
    V = np.asarray(alone.vectors[:12])
    out: dict[int, dict] = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, shared.query(
        vector=V[i], k=5, method="mmr"))) for i in range(len(V))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    key = ("objectives", 5)
    assert shared.batchers[key].items == len(V) and shared.batchers[key].batches < len(V)
    for i in range(len(V)):
        ref = alone.query(vector=V[i], k=5, method="mmr")
        assert [x["row_idx"] for x in out[i]["items"]] == [x["row_idx"] for x in ref["items"]]
        assert out[i]["objectives"].keys() == ref["objectives"].keys()
        assert np.allclose(list(out[i]["objectives"].values()),
                           list(ref["objectives"].values()), atol=1e-5)
    w = {"diversity": 1.0}
    own = shared.query(vector=V[0], k=5, method="mmr", weights=w)
    assert shared.batchers[key].items == len(V)
    assert own["objectives"]["composite"] == pytest.approx(
        alone.query(vector=V[0], k=5, method="mmr", weights=w)["objectives"]["composite"])


# -- strict fields and the library checks behind them --------------------------------------

@pytest.mark.parametrize("body,where", [
    ({"query": "a dog", "k": "5"}, "k"),
    ({"query": "a dog", "k": True}, "k"),
    ({"query": "a dog", "k": 5.5}, "k"),
    ({"vector": []}, "vector"),
    ({"vector": ["0.1"] * 384}, "vector.0"),
    ({"query": "a dog", "weights": {"diversity": "1"}}, "weights.diversity"),
    ({"query": "a dog", "weights": {"diversity": True}}, "weights.diversity"),
    ({"query": "a dog", "mmr_lambda": "0.5"}, "mmr_lambda"),
    ({"query": "a dog", "seed": False}, "seed"),
    ({"query": "a dog", "colour": "red"}, "colour"),
    ({"query": ""}, "query"),
    ({"query": "\ud800 broken"}, "query"),           # a lone surrogate is not a string
    ({"requests": []}, "requests"),
])
def test_wrong_types_are_a_one_line_422(client, body, where):
    path = "/v1/fanout/batch" if "requests" in body else "/v1/fanout"
    r = client.post(path, content=json.dumps(body).encode(),
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and _one_line(r).startswith(where + ":")


def test_non_finite_numbers_are_refused(client):
    for body in ({"vector": [float("nan")] * 384}, {"query": "a", "mmr_lambda": float("inf")},
                 {"query": "a dog", "weights": {"coverage": float("nan")}}):
        r = client.post("/v1/fanout", content=json.dumps(body).encode(),
                        headers={"content-type": "application/json"})
        assert r.status_code == 422, body
        assert "finite" in _one_line(r)


@pytest.mark.parametrize("body,fragment", [
    ({"weights": {"diversity": -5.0}}, "must be a finite number in [0, 1e+06]"),
    ({"weights": {"diversity": 0, "alignment": 0.0}}, "at least one objective weight"),
    ({"weights": {}}, "at least one objective weight"),
    ({"weights": {"composite": 1}}, "unknown objective(s) composite"),
    ({"weights": {"coverage": 1e300}}, "must be a finite number in [0, 1e+06]"),
    ({"mmr_lambda": 1.5}, "mmr_lambda must be a finite number in [0, 1]"),
    ({"seed": -1}, "seed must be an integer in [0, 2**63)"),
    ({"seed": 2**63}, "seed must be an integer in [0, 2**63)"),
    ({"best_of": 0}, "best_of must be an integer in [1, 64]"),
    ({"steps": 1000}, "steps must be an integer in [1, 100]"),
    ({"guidance": -1}, "guidance must be a finite number in [0, inf]"),
    ({"query": None, "vector": [0.0] * 384}, "all zeros"),
    ({"method": "teacher", "model": "../etc/passwd"}, "a model id starts with a letter"),
])
def test_bad_values_are_a_one_line_400_whatever_the_method(client, body, fragment):
    body = {"query": "a dog", "k": 5, **body}
    r = client.post("/v1/fanout", content=json.dumps(body).encode(),
                    headers={"content-type": "application/json"})
    assert r.status_code == 400 and fragment in _one_line(r), r.text


def test_weights_and_extreme_vectors_give_finite_answers(client):
    r = client.post("/v1/fanout", json={"query": "a dog", "k": 5,
                                        "weights": {"diversity": 1.0}})
    obj = r.json()["objectives"]
    assert obj["composite"] == pytest.approx(obj["diversity"] / 5)
    for v in ([1e300] * 384, [2.2e-313] * 384, [3.5e38] + [0.0] * 383):
        r = client.post("/v1/fanout", json={"vector": v, "k": 3})
        assert r.status_code == 200 and all(np.isfinite(list(r.json()["objectives"].values())))


def test_the_library_gives_python_callers_the_same_errors(home):
    from retrieval import fanout_query
    from retrieval.objectives import check_weights, set_objectives

    assert check_weights(None) == {"diversity": 0.5, "alignment": 0.5}
    assert check_weights({"coverage": 2}) == {"coverage": 2.0}
    for bad in ({"coverage": float("nan")}, {"coverage": -1}, {"coverage": 0},
                {"coverage": True}, {"beauty": 1.0}):
        with pytest.raises(InvalidParameterError):
            check_weights(bad)
    q = np.eye(4)[:1]
    with pytest.raises(InvalidParameterError, match="at least one"):
        set_objectives(q, np.eye(4)[None], np.eye(4)[None], {"diversity": 0.0})
    st = Store.open(home[0])
    with pytest.raises(InvalidParameterError, match="weight of 'alignment'"):
        fanout_query(st, INDEX, vector=_vector(), k=3, weights={"alignment": float("nan")})
    with pytest.raises(InvalidParameterError, match="not valid Unicode"):
        fanout_query(st, INDEX, text="\ud800 broken", k=3)


def test_kernel_threads_reach_every_thread_that_computes(home):
    """``create_app(kernel_threads=n)`` caps torch, FAISS's OpenMP and every threadpoolctl
    pool in each request worker and each batching thread, not only the calling thread:
    OpenMP's count is per thread and a new thread starts from the environment's (1 under
    ``make test``), so only the per-thread cap can make these 2. Bad values: one
    CurateError."""
    import faiss
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from retrieval.service import create_app, limit_kernel_threads

    def probe():
        return (torch.get_num_threads(), faiss.omp_get_max_threads(),
                sorted({p["num_threads"] for p in threadpool_info()}))

    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    app = None
    try:
        app = create_app(home[0], INDEX, preload_models=[], kernel_threads=2)
        runner = app.state.runner
        assert runner.pool.submit(probe).result() == (2, 2, [2])
        batcher = runner.engine._batcher(("probe",), lambda items: [probe()] * len(items),
                                         stack=list)
        assert batcher.submit("x") == (2, 2, [2])
        assert limit_kernel_threads(1) == {"torch": 1, "faiss": 1, "blas_openmp": 1}
    finally:
        if app is not None:
            app.state.runner.pool.shutdown()
        torch.set_num_threads(before[0])
        faiss.omp_set_num_threads(before[1])
        threadpool_limits(limits=1)           # make test's setting (OMP_NUM_THREADS=1)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(CurateError, match="kernel_threads"):
            limit_kernel_threads(bad)


def test_switch_interval_is_set_by_the_app_and_checked(home):
    """``create_app(switch_interval_s=s)`` sets the process's GIL switch interval (``curate
    serve`` passes ``SWITCH_INTERVAL_S``); None leaves it; a bad value is one CurateError."""
    import sys

    from retrieval.service import create_app, set_switch_interval

    before = sys.getswitchinterval()
    app = None
    try:
        app = create_app(home[0], INDEX, preload_models=[], switch_interval_s=3e-4)
        assert sys.getswitchinterval() == pytest.approx(3e-4)
        assert set_switch_interval(1e-3) == pytest.approx(3e-4)
        for bad in (0, -1.0, 2.0, float("nan"), "fast", True):
            with pytest.raises(CurateError, match="switch_interval_s"):
                set_switch_interval(bad)
        assert sys.getswitchinterval() == pytest.approx(1e-3)
    finally:
        if app is not None:
            app.state.runner.pool.shutdown()
        sys.setswitchinterval(before)


def test_bodies_are_parsed_by_the_rust_parser_with_the_stdlib_as_fallback(client, monkeypatch):
    """A valid body never reaches ``json.loads`` (``FastJSONRequest``); one the fast parser
    refuses does, so its error is the standard library's (a lone surrogate: 422 by field)."""
    import retrieval.service as service

    calls = []
    real = json.loads
    monkeypatch.setattr(service.json, "loads", lambda b, *a, **kw: calls.append(b) or real(b))
    body = {"vector": _vector(3), "k": 3, "weights": {"diversity": 1e-3, "alignment": 1}}
    sent = [json.dumps(body).encode(), json.dumps({"query": "\ud800 x"}).encode(),
            b"{not json"]                      # encoded first: the client uses json too
    answers = []
    for content in sent:
        answers.append(client.post("/v1/fanout", content=content,
                                   headers={"content-type": "application/json"}))
    assert calls == sent[1:]                   # the server parsed only these with the stdlib
    monkeypatch.undo()
    assert answers[0].status_code == 200 and len(answers[0].json()["items"]) == 3
    assert answers[1].status_code == 422 and _one_line(answers[1]).startswith("query:")
    assert answers[2].status_code == 422
