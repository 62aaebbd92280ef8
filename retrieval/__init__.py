"""retrieval: R4T fan-out retrieval (FAISS indices, set objectives, teacher, diffusion).

Not built yet — see the issue "R4T fan-out retrieval". The package exists so the
distribution's layout is stable.
"""

__all__: list[str] = []
