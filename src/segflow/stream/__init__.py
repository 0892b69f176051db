"""The real-time engine beyond one process: a host for keyed stream processors.

``segflow.stream.identity`` is the resolution stage upstream (raw calls to records keyed
by profile id, identity merges and plan changes included, with the store's identity
rules); ``segflow.stream.keyed`` is one profile's step as a keyed operator needs it
(state in and out as bytes, one event-time deadline, the changes), free of any
processor's API; ``segflow.stream.spark`` hosts it on Spark Structured Streaming
(``transformWithStateInPandas``; needs the dev dependency ``pyspark``);
``segflow.stream.reference`` is the single-process host over the same log, the
reference.  Segment semantics stay in ``segflow.realtime``; see docs/scale.md.
"""

from __future__ import annotations
