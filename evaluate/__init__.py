"""Evaluation: retrieval, compositional suites and real benchmarks, ablation, TCAS, probes, plots.

Each module is a command (`python -m evaluate.retrieval ...`); nothing is imported here, so that
running one does not import it twice.
"""
