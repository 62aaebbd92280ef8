"""retrieval: fan-out retrieval (R4T). Built so far: FAISS indices in the store, set-level
objectives, the top-k and MMR baselines, ``fanout_query``. Not built yet: the RL teacher, the
synthetic-set store, the diffusion retriever and the HTTP service."""

from retrieval.baselines import FanoutResult, MMRRetriever, TopKRetriever
from retrieval.fanout import fanout_query
from retrieval.index import VectorIndex, build_index, load_index
from retrieval.objectives import DEFAULT_WEIGHTS, set_objectives

__all__ = ["DEFAULT_WEIGHTS", "FanoutResult", "MMRRetriever", "TopKRetriever", "VectorIndex",
           "build_index", "fanout_query", "load_index", "set_objectives"]
