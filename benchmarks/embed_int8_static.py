"""Trial: int8 *static* quantisation of the MiniLM encoder with NNCF + OpenVINO.

The question (issue 10): can post-training static int8 quantisation make local embedding
≥ 3× faster than the float32 ``torch`` reference while keeping every row's cosine to it
≥ 0.99? ``nncf.quantize`` (NNCF 3.4, ``model_type=TRANSFORMER``, whose default preset is
``mixed``; variants with SmoothQuant α = 0.5 and the ``performance`` preset) calibrates
activation ranges on 512 WordNet glosses that are not in the test texts, then OpenVINO
compiles the quantised network (f32 for the layers left unquantised). Each variant
embeds the same 3,000 glosses in this one process, after the ``torch`` and OpenVINO-float32
runs (each backend warmed up on 256 glosses first), so the ratios are against a baseline run
minutes before on the same host; each timing is one run (single runs here vary by ~15%).

NNCF is not a Curate dependency (this is a trial, not a backend):
``.venv/bin/pip install nncf==3.4.0 && .venv/bin/python benchmarks/embed_int8_static.py``
→ ``results/embed_int8_static.json`` and ``.md``.
"""

from __future__ import annotations

import time

import numpy as np
from common import RESULTS, cpu_isa, cpu_model, machine, write_json, write_markdown

N_TEST, N_CALIB, CALIB_BATCH = 3000, 512, 16


def main() -> None:
    import nncf
    import openvino as ov

    from core import encoders as E
    from curate.defaults import load_wordnet

    texts = load_wordnet(None)["gloss"].to_list()
    test, calib = texts[:N_TEST], texts[50_000:50_000 + N_CALIB]
    records: list[dict] = []

    torch_encoder = E.get_encoder("torch")
    torch_encoder.encode(test[:256])                                 # warm-up, as below
    t = time.perf_counter()
    ref = torch_encoder.encode(test)
    t_torch = time.perf_counter() - t
    records.append({"variant": "torch float32 (reference)", "wall_s": t_torch,
                    "cos_worst": 1.0, "cos_mean": 1.0})

    ovf = E.OpenVinoEncoder()          # tokenizer, length buckets and pooling are reused

    def feed(batch: list[str]) -> dict[str, np.ndarray]:
        enc = ovf.tokenizer(batch, padding=True, truncation=True, max_length=ovf.max_length,
                            return_tensors="np")
        return {k: np.asarray(enc[k], dtype=np.int64) for k in E.INPUTS}

    def timed(name: str, model) -> None:
        ovf.compile(model, config)
        ovf.encode(test[:256])                                       # warm-up
        t = time.perf_counter()
        v = ovf.encode(test)
        wall = time.perf_counter() - t
        cos = (v * ref).sum(axis=1)
        records.append({"variant": name, "wall_s": wall, "cos_worst": float(cos.min()),
                        "cos_mean": float(cos.mean())})
        print(records[-1], flush=True)

    core = ov.Core()
    config = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False,
              "INFERENCE_NUM_THREADS": E.cores(), "INFERENCE_PRECISION_HINT": "f32"}
    timed("openvino float32", str(ovf.path))
    calibration = nncf.Dataset([feed(calib[i:i + CALIB_BATCH])
                                for i in range(0, N_CALIB, CALIB_BATCH)])
    variants = {
        "nncf int8 static (transformer)": {},
        "nncf int8 static + SmoothQuant 0.5": {
            "advanced_parameters": nncf.AdvancedQuantizationParameters(smooth_quant_alpha=0.5)},
        "nncf int8 static, performance preset": {
            "preset": nncf.QuantizationPreset.PERFORMANCE},
    }
    for name, kw in variants.items():
        q = nncf.quantize(core.read_model(str(ovf.path)), calibration,
                          subset_size=N_CALIB // CALIB_BATCH,
                          model_type=nncf.ModelType.TRANSFORMER, **kw)
        timed(name, q)

    for r in records:
        r.update({"texts": N_TEST, "texts_per_s": N_TEST / r["wall_s"],
                  "x_torch": t_torch / r["wall_s"], "cpu": cpu_model(),
                  "cpu_isa": cpu_isa(),
                  "nncf": nncf.__version__, "openvino": ov.__version__})
    write_json(RESULTS / "embed_int8_static.json", records)
    lines = [f"# int8 static quantisation trial ({N_TEST:,} WordNet glosses, one process; "
             f"{machine()})", "",
             "| variant | wall s | texts/s | × torch | cosine to torch, worst / mean |",
             "|---|---:|---:|---:|---|"]
    lines += [f"| {r['variant']} | {r['wall_s']:.1f} | {r['texts_per_s']:.0f} | "
              f"{r['x_torch']:.2f} | {r['cos_worst']:.4f} / {r['cos_mean']:.4f} |"
              for r in records]
    write_markdown(RESULTS / "embed_int8_static.md", lines)


if __name__ == "__main__":
    main()
