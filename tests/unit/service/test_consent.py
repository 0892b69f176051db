"""The unknown-consent configuration read from SEGFLOW_UNKNOWN_CONSENT: inline YAML or
JSON, or @FILE; a malformed one names the variable and the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from segflow.model.consent import UnknownConsent
from segflow.model.errors import DefinitionError
from segflow.service.consent import UNKNOWN_CONSENT_ENV, configured_unknown_consent


def test_unset_denies_and_inline_json_or_a_yaml_file_configure(tmp_path: Path) -> None:
    assert configured_unknown_consent({}) == UnknownConsent()
    inline = '{"default": "deny", "regions": {"US": {"email": "allow"}}}'
    got = configured_unknown_consent({UNKNOWN_CONSENT_ENV: inline})
    assert got.regions == {"US": {"email": "allow"}}
    f = tmp_path / "consent.yaml"
    f.write_text("default: allow\nregion_trait: country\nregions:\n  DE: {email: deny}\n")
    got = configured_unknown_consent({UNKNOWN_CONSENT_ENV: f"@{f}"})
    assert (got.default, got.region_trait, got.regions) == (
        "allow",
        "country",
        {"DE": {"email": "deny"}},
    )


def test_a_bad_configuration_names_the_variable_and_path(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as e:
        configured_unknown_consent({UNKNOWN_CONSENT_ENV: "{default: sometimes}"})
    assert [p.path for p in e.value.problems] == [f"{UNKNOWN_CONSENT_ENV}.default"]
    with pytest.raises(DefinitionError) as e:
        configured_unknown_consent({UNKNOWN_CONSENT_ENV: "{default: [deny"})
    assert "malformed" in e.value.problems[0].message
    with pytest.raises(DefinitionError) as e:
        configured_unknown_consent({UNKNOWN_CONSENT_ENV: f"@{tmp_path / 'missing.yaml'}"})
    assert "cannot read" in e.value.problems[0].message
