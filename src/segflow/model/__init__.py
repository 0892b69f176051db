"""Typed models: Segment-spec messages and segment definitions."""
