"""Measuring attention's cost and benefit: ``benchmark`` (speed, FLOPs, memory, timm parity) and
``compare`` (several models x seeds trained with one recipe, summarised in a report)."""

from attnlab.bench.throughput import BenchResult, benchmark, results_markdown
from attnlab.utils import environment

__all__ = ["BenchResult", "benchmark", "environment", "results_markdown"]
