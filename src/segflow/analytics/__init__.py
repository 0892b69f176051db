"""Segment analytics as pure computations over arrays and counts the caller gathers:
metrics, overlap, transitions and experiment statistics (no SQL, no I/O)."""
