"""retrieval: fan-out retrieval (R4T, arXiv 2603.06397) — FAISS indices in the store, set-level
objectives, the top-k and MMR baselines, the GRPO fan-out teacher (``retrieval.teacher``),
teacher-set synthesis (``retrieval.synthesis``), the EDM diffusion retriever
(``retrieval.diffusion``), one query path (``fanout_query`` / ``FanoutEngine``) and the HTTP
service (``retrieval.service``). The torch modules are imported on use, not here."""

from retrieval.baselines import FanoutResult, MMRRetriever, TopKRetriever
from retrieval.fanout import fanout_query
from retrieval.index import VectorIndex, build_index, load_index
from retrieval.objectives import DEFAULT_WEIGHTS, set_objectives

__all__ = ["DEFAULT_WEIGHTS", "FanoutResult", "MMRRetriever", "TopKRetriever", "VectorIndex",
           "build_index", "fanout_query", "load_index", "set_objectives"]
