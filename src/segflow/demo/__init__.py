"""A synthetic shop to try segflow on, and a library of ready-made segments.

``generate_shop`` writes a year of a realistic store's events as Parquet in the flat
event-table format segflow ingests; ``segments/*.yaml`` holds segments that make
sense on that data (and on any store instrumented with the Segment e-commerce spec).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from segflow.demo.generator import ShopSummary, generate_shop, write_jsonl

SEGMENTS_DIR: Final = Path(__file__).parent / "segments"
"""Where the ready-made segment definitions live (one YAML document per file)."""

__all__ = ["SEGMENTS_DIR", "ShopSummary", "generate_shop", "write_jsonl"]
