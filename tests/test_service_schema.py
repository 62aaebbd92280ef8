"""The service against its own OpenAPI schema (schemathesis) and random request bodies
(hypothesis): every answer is a 200 that fits the schema or a documented 4xx with a one-line
``detail`` — never a 500."""

from __future__ import annotations

import json
import math

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.cli import main

FIELDS = ("query", "vector", "k", "method", "weights", "mmr_lambda", "model", "seed",
          "best_of", "steps", "guidance")


@pytest.fixture(scope="module")
def app(wordnet_home):
    from retrieval.service import create_app
    from stores import Store

    if "svc-schema" not in Store.open(wordnet_home).indices():
        assert main(["--store", str(wordnet_home), "index", "build", "--name", "svc-schema",
                     "--json"]) == 0
    return create_app(wordnet_home, "svc-schema", max_k=20, timeout_s=30)


@pytest.fixture(scope="module")
def api_schema(app):
    # a 400 is documented for values the schema cannot express (the model a method needs, a
    # zero vector, a blank query): schema-valid requests may get it, never a 422 or a 5xx
    config = schemathesis.config.SchemathesisConfig.from_str(
        '[checks.positive_data_acceptance]\nexpected-statuses = ["2xx", "400"]\n')
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


CASES: dict[str, int] = {}


# schemathesis's own pytest plugin (``schema.parametrize``) does not run under pytest 9, so
# its Hypothesis strategies drive an ordinary test, one per operation and generation mode
@pytest.mark.parametrize("path,verb,mode", [
    ("/v1/fanout", "POST", "positive"), ("/v1/fanout", "POST", "negative"),
    ("/v1/fanout/batch", "POST", "positive"), ("/v1/fanout/batch", "POST", "negative"),
    ("/healthz", "GET", "positive")])          # GET /healthz has no input to get wrong
def test_schemathesis_finds_nothing(api_schema, path, verb, mode):
    strategy = api_schema[path][verb].as_strategy(
        generation_mode=schemathesis.GenerationMode(mode))
    key = f"{verb} {path} {mode}"

    @given(case=strategy)
    @settings(max_examples=30 if "batch" in path else 40, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        CASES[key] = CASES.get(key, 0) + 1
        case.call_and_validate()

    run()
    assert CASES[key] > 0


# -- random bodies -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
near_values = {
    "query": st.sampled_from(["a large urban area", "dog: a domestic animal", " ", "",
                              "\ud800x", "x" * 10_001]) | json_values,
    "vector": st.lists(st.floats(-10, 10), min_size=384, max_size=384)
    | st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3) | json_values,
    "k": st.integers(-2, 25) | st.sampled_from(["5", True, 5.0, 2**70]),
    "method": st.sampled_from(["topk", "mmr", "teacher", "diffusion", "rerank"]),
    "weights": st.dictionaries(st.sampled_from(["diversity", "alignment", "coverage",
                                                "composite"]),
                               st.floats(-1, 2) | st.just(float("nan")), max_size=3)
    | json_values,
    "mmr_lambda": st.floats(-0.5, 1.5) | json_values,
    "model": st.sampled_from(["nope", "../x", "diffusion-0", ""]) | json_values,
    "seed": st.integers(-1, 2**33) | json_values,
    "best_of": st.integers(0, 70) | json_values,
    "steps": st.integers(0, 110) | json_values,
    "guidance": st.floats(-1, 1e40) | json_values,
}
near_bodies = st.fixed_dictionaries({}, optional={f: near_values[f] for f in FIELDS})
bodies = near_bodies | json_values


def _check(r, body) -> None:
    assert r.status_code in (200, 400, 413, 422), (r.status_code, r.text, body)
    if r.status_code == 200:
        out = r.json()
        items = out["items"] if "items" in out else [i for x in out["results"]
                                                     for i in x["items"]]
        assert all(math.isfinite(i["score"]) for i in items)
        return
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail, (detail, body)


@given(body=bodies)
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
def test_random_bodies_get_a_200_or_a_one_line_4xx(app, body):
    client = TestClient(app)
    raw = json.dumps(body).encode()          # NaN / Infinity as Python writes them
    r = client.post("/v1/fanout", content=raw, headers={"content-type": "application/json"})
    _check(r, body)
    r = client.post("/v1/fanout/batch", content=json.dumps({"requests": [body]}).encode(),
                    headers={"content-type": "application/json"})
    _check(r, body)
