"""The typed OpenAPI models admit everything the definition parser accepts, in the
written and in the canonical form, so a generated client can send any definition and
the server's responses always match their schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml
from hypothesis import given

from segflow.api.schemas import ComputedCondition, SegmentDefinition
from segflow.model.definition import COMPUTED_TRAITS, load_segment_text, parse_segment
from tests.strategies import trees

LIBRARY = Path(__file__).parents[3] / "src" / "segflow" / "demo" / "segments"


@given(trees)
def test_every_parsed_condition_fits_the_schema_written_and_canonical(doc: Any) -> None:
    written = {"id": "s", "condition": doc}
    seg = parse_segment(written)
    SegmentDefinition.model_validate(written)
    SegmentDefinition.model_validate(seg.to_dict())


def test_the_segment_library_fits_the_schema() -> None:
    files = sorted(LIBRARY.glob("*.yaml"))
    assert files
    for f in files:
        text = f.read_text(encoding="utf-8")
        SegmentDefinition.model_validate(yaml.safe_load(text))
        for seg in load_segment_text(text, source=f.name):
            SegmentDefinition.model_validate(seg.to_dict())


def test_aliased_keywords_appear_under_their_language_names() -> None:
    schema = SegmentDefinition.model_json_schema(by_alias=True)
    defs = schema["$defs"]
    assert set(defs["AllCondition"]["properties"]) == {"all"}
    assert set(defs["NotCondition"]["properties"]) == {"not"}
    assert {"in", "not_in", "between"} <= set(defs["TraitCondition"]["properties"])
    assert "for" in defs["AbandonmentCondition"]["properties"]
    assert set(defs["FromToWindow"]["properties"]) == {"from", "to"}


def test_the_schema_names_every_computed_trait_a_condition_reads() -> None:
    names = get_args(ComputedCondition.model_fields["computed"].annotation)
    assert set(names) == set(COMPUTED_TRAITS)
