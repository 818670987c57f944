"""Evaluation: retrieval (and, later, compositional suites, ablation, plots)."""

from evaluate.retrieval import embed_dataset, format_table, retrieval_metrics

__all__ = ["embed_dataset", "format_table", "retrieval_metrics"]
