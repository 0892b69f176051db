"""Hypothesis profiles for the conformance suites: ``--hypothesis-profile=long`` runs
thousands of examples (as does ``SEGFLOW_EXAMPLES=5000``)."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("long", max_examples=5000, deadline=None)
