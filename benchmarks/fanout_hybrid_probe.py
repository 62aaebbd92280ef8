"""Can any scorer of a query's candidates reach issue #11's goal region — recall@10 above
top-k's *and* Vendi ≥ 6.0 — with dense signals alone, or only with a lexical one?

Same data and split as benchmarks/fanout.py (HNSW32 over all WordNet glosses; the bundled
query set, test split; the hypernym itself is never returned). Each query's candidates are the
union of its three views' (full text, head, body) 150 nearest items. Rows, each a (recall@10,
Vendi) point, the trade-off swept by greedy MMR (``retrieval.baselines.mmr_select``, λ = the
relevance weight) over the candidates:

- ``dense``: relevance = cos(full query, item): top-k over the union, then MMR;
- ``dense-learned``: relevance = P(item is a reference) from a gradient-boosted classifier
  (scikit-learn ``HistGradientBoostingClassifier``, seed 0) trained on the *train* split's
  candidates with dense features only: cos to each view, log rank in each view's list, cos
  minus the best cos of the full and head views — the most a dense re-ranker of these
  candidates learns here;
- ``hybrid``: relevance = cos(full query, item) + [the item's text ("lemmas: gloss") holds
  every word of one of the query's lemmas] — a lexical match of the query's head, words
  lower-cased, regular plurals singular (``Lexicon.stem``); no training;
- with ``--diffusion MODEL …``: each diffusion retriever's sub-queries (seed 0; guidance
  1, 1.5, 2, 3) grounded to each one's nearest unused item of its 100 nearest
  (``nearest``), and to its first unused lexical match there, else its nearest
  (``lexical-first``); and, at guidance 1, the ``hybrid`` sweep over the union of its
  sub-queries' 50 nearest instead of the views' candidates.

Everything is vectorised (sparse word-incidence matrices, batched MMR); the word lists come
from scikit-learn's ``CountVectorizer``. Writes results/fanout_hybrid_probe.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, machine, wordnet_fanout, write_json, write_markdown  # noqa: E402

from retrieval.baselines import mmr_select  # noqa: E402
from retrieval.index import assign_nearest, distinct_rows, sub_query_hits  # noqa: E402
from retrieval.objectives import vendi  # noqa: E402
from retrieval.queries import recall_at_k  # noqa: E402
from stores import files  # noqa: E402

K, PER_VIEW, SEED = 10, 150, 0
LAMBDAS = (0.9, 0.8, 0.7, 0.65, 0.6, 0.55, 0.5)
GUIDANCES = (1.0, 1.5, 2.0, 3.0)


def candidate_pool(index, views: np.ndarray, exclude: np.ndarray) -> tuple[np.ndarray, ...]:
    """(rows (B, P) the union of each view's PER_VIEW nearest, −1 padded; log ranks (B, P, V),
    log(1 + 2·PER_VIEW) where absent)."""
    B, nv, _ = views.shape
    lists = np.stack([index.search(views[:, j], PER_VIEW)[1] for j in range(nv)], 1)
    rows = distinct_rows(lists.reshape(B, -1), exclude)
    ranks = np.full((*rows.shape, nv), np.log1p(2 * PER_VIEW))
    for j in range(nv):                                 # a loop over the 3 views
        match = rows[:, :, None] == lists[:, j][:, None, :]          # (B, P, PER_VIEW)
        found = match.any(2)
        ranks[:, :, j] = np.where(found, np.log1p(match.argmax(2)), ranks[:, :, j])
    return rows, ranks


def dense_features(X, views, rows, ranks) -> np.ndarray:
    """(B, P, F): cos to each view, log ranks, cos − the best cos (full and head views)."""
    cos = np.einsum("bpd,bvd->bpv", X[np.clip(rows, 0, None)], views)
    cos = np.where(rows[:, :, None] >= 0, cos, -1.0)
    best = cos[:, :, :2].max(1, keepdims=True)
    return np.concatenate([cos, ranks, cos[:, :, :2] - best], 2)


class Lexicon:
    """Word-incidence of the items' texts (n, W) and the query lemmas' words (sparse,
    binary), words lower-cased, regular plurals made singular (``stem``)."""

    def __init__(self, texts: list[str]):
        from sklearn.feature_extraction.text import CountVectorizer

        self.vec = CountVectorizer(binary=True, token_pattern=r"(?u)\b\w+\b")
        counts = self.vec.fit_transform(texts).tocsc()
        vocab = self.vec.get_feature_names_out()
        stems = np.array([self.stem(w) for w in vocab])            # over the vocabulary
        self.stems, stem_id = np.unique(stems, return_inverse=True)
        project = sp.csr_matrix((np.ones(len(vocab)), (np.arange(len(vocab)), stem_id)),
                                shape=(len(vocab), len(self.stems)))
        self.items = ((counts @ project) > 0).astype(np.int32).tocsr()

    @staticmethod
    def stem(word: str) -> str:
        """A plural's singular by the regular English rules: "-es" after s, x, z, ch, sh
        (boxes → box), else a final "s" unless the word ends in ss, us or is (horses → horse,
        class stays); too short a word is left as it is."""
        if len(word) > 4 and word.endswith("es") and word[:-2].endswith(
                ("s", "x", "z", "ch", "sh")):
            return word[:-2]
        if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            return word[:-1]
        return word

    def phrases(self, phrases: list[str]) -> tuple[sp.csr_matrix, np.ndarray]:
        """(m, S) binary words of each phrase and (m,) their distinct word counts — words no
        item holds count too, so a phrase with one can never match."""
        analyse = self.vec.build_analyzer()
        sizes = np.array([len({self.stem(w) for w in analyse(p)}) for p in phrases])  # per
        counts = self.vec.transform(phrases)                      # query lemma, not per item
        words = self.vec.get_feature_names_out()
        col = np.searchsorted(self.stems, np.array([self.stem(w) for w in words]))
        project = sp.csr_matrix((np.ones(len(words)), (np.arange(len(words)), col)),
                                shape=(len(words), len(self.stems)))
        return ((counts @ project) > 0).astype(np.int32).tocsr(), sizes

    def matches(self, rows: np.ndarray, lemmas: sp.csr_matrix, sizes: np.ndarray,
                owner: np.ndarray) -> np.ndarray:
        """(B, P) bool: item rows[b, p] (−1: none) holds every word of some lemma of query b.
        ``lemmas`` (m, S) and ``sizes`` (m,) are all queries' lemmas, ``owner`` (m,) the
        query of each, sorted. One sparse row-wise product over every (candidate, lemma of
        its query) pair; no Python loop over queries."""
        B, P = rows.shape
        starts = np.searchsorted(owner, np.arange(B))
        per = np.searchsorted(owner, np.arange(B), side="right") - starts   # lemmas a query
        pair_q = np.repeat(np.arange(B), P)
        n = per[pair_q]                                     # lemmas of each pair's query
        pair = np.repeat(np.arange(B * P), n)
        offset = np.arange(len(pair)) - np.repeat(np.cumsum(n) - n, n)
        lem = starts[pair_q[pair]] + offset
        item = rows.ravel()[pair]
        shared = np.asarray(self.items[np.clip(item, 0, None)].multiply(lemmas[lem])
                            .sum(1)).ravel()
        full = (shared == sizes[lem]) & (sizes[lem] > 0) & (item >= 0)
        out = np.zeros(B * P, dtype=bool)
        np.logical_or.at(out, pair, full)
        return out.reshape(B, P)


def point(X, rows, refs) -> dict[str, float]:
    """(recall@k, mean Vendi) of sets ``rows`` (B, k); every probe set is full (no −1)."""
    assert (rows >= 0).all()
    return {"recall_at_k": float(np.nanmean(recall_at_k(rows, refs))),
            "vendi": float(vendi(X[np.clip(rows, 0, None)]).mean())}


def sweep(X, rows, rel, refs) -> dict[str, dict]:
    """Top-k by ``rel`` (B, P) and MMR at each λ, as (recall, Vendi) points."""
    rel = np.where(rows >= 0, rel, -np.inf)
    C = X[np.clip(rows, 0, None)]
    sim = C @ C.transpose(0, 2, 1)
    out = {}
    for lam in (1.0, *LAMBDAS):
        pos = mmr_select(rel, sim, K, lam)
        picks = np.where(pos >= 0, np.take_along_axis(rows, np.clip(pos, 0, None), 1), -1)
        out["topk" if lam == 1.0 else f"mmr-{lam}"] = point(X, picks, refs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--diffusion", nargs="*", default=[],
                    help="also ground these diffusion models' sub-queries")
    ap.add_argument("--render", action="store_true", help="redraw the .md from the JSON")
    args = ap.parse_args()
    if args.render:
        report(json.loads((RESULTS / "fanout_hybrid_probe.json").read_text()))
        return
    st, index, X, qs, tr, te = wordnet_fanout()
    frame = st.samples("wordnet", ["lemmas", "gloss"])
    lemmas = frame["lemmas"].list.join(" ").str.replace_all("_", " ")
    lexicon = Lexicon((lemmas + ": " + frame["gloss"]).to_list())

    def lexical(split, rows):
        own = frame["lemmas"][split.exclude.tolist()]           # the query's own lemmas
        owner = np.repeat(np.arange(len(own)), own.list.len().to_numpy())
        words, sizes = lexicon.phrases(own.explode().str.replace_all("_", " ").to_list())
        return lexicon.matches(rows, words, sizes, owner)

    from sklearn.ensemble import HistGradientBoostingClassifier

    pools = {}
    for name, split in (("train", tr), ("test", te)):
        rows, ranks = candidate_pool(index, split.views, split.exclude)
        refs = split.refs
        label = (rows[:, :, None] == refs[:, None, :]).any(2) & (rows >= 0)
        pools[name] = (rows, dense_features(X, split.views, rows, ranks), label)
    rows_tr, f_tr, y_tr = pools["train"]
    keep = rows_tr >= 0
    clf = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=SEED)
    clf.fit(f_tr[keep], y_tr[keep])
    rows, f_te, _ = pools["test"]
    p = clf.predict_proba(f_te.reshape(-1, f_te.shape[2]))[:, 1].reshape(rows.shape)
    lex = lexical(te, rows)
    out = {"dense": sweep(X, rows, f_te[:, :, 0], te.refs),
           "dense-learned": sweep(X, rows, p, te.refs),
           "hybrid": sweep(X, rows, f_te[:, :, 0] + lex, te.refs)}
    if args.diffusion:
        from retrieval.fanout import FanoutEngine

        engine = FanoutEngine(st, "wordnet-hnsw32")
    for model in args.diffusion:
        teacher = files.read_json(st.model_path(model) / "model.json")["teacher"]
        regime = files.read_json(st.model_path(teacher) / "model.json")["regime"]
        row = out[f"diffusion-{regime}"] = {}
        for g in GUIDANCES:
            retr = engine.retriever("diffusion", model, guidance=g)
            retr.model.warm_up(retr.steps, g)
            hits = sub_query_hits(index, retr._sub_queries(te.views, SEED), 100)  # (B, k, 100)
            lex_hits = lexical(te, hits.reshape(len(hits), -1)).reshape(hits.shape)
            first = np.argsort(~lex_hits, axis=2, kind="stable")    # matches first, in order
            row[f"g{g:g}-nearest"] = point(X, assign_nearest(hits, te.exclude), te.refs)
            row[f"g{g:g}-lexical-first"] = point(
                X, assign_nearest(np.take_along_axis(hits, first, 2), te.exclude), te.refs)
            if g == 1.0:        # hybrid MMR over the union of the sub-queries' 50 nearest
                cands = distinct_rows(hits[:, :, :50].reshape(len(hits), -1), te.exclude)
                cos = np.einsum("bpd,bd->bp", X[np.clip(cands, 0, None)], te.views[:, 0])
                out[f"diffusion-{regime}-candidates, hybrid"] = sweep(
                    X, cands, cos + lexical(te, cands), te.refs)
        row["model_id"] = model
    out.update({"query_set": qs, "n_train": len(tr), "n_test": len(te),
                "candidates_per_view": PER_VIEW, "machine": machine()})
    write_json(RESULTS / "fanout_hybrid_probe.json", out)
    report(out)


def report(out: dict) -> None:
    lines = ["# Fan-out goal region: dense vs hybrid relevance", "",
             f"WordNet test queries: {out['n_test']} (dense-learned trained on "
             f"{out['n_train']} train queries); candidates: the union of each view's "
             f"{out['candidates_per_view']} nearest; k = {K}. One run (deterministic; the "
             f"classifier seeded). {out['machine']}. Produced by "
             "`python benchmarks/fanout_hybrid_probe.py`. Goal region: recall above top-k's "
             "and Vendi ≥ 6.0.", "",
             "| relevance | setting | recall@10 | Vendi | in goal region |",
             "|---|---|---|---|---|"]
    top = out["dense"]["topk"]["recall_at_k"]
    for name, rows in out.items():
        for setting, v in (rows.items() if isinstance(rows, dict) else ()):
            if not isinstance(v, dict):
                continue
            inside = v["recall_at_k"] > top and v["vendi"] >= 6.0
            lines.append(f"| {name} | {setting} | {v['recall_at_k']:.3f} | {v['vendi']:.2f} | "
                         f"{'yes' if inside else ''} |")
    write_markdown(RESULTS / "fanout_hybrid_probe.md", lines)


if __name__ == "__main__":
    main()
