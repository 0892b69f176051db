"""The configured rule for unknown consent (``model.consent.UnknownConsent``): what a
profile that never stated consent on a channel gets where its destination does not
say, per region and channel.  Given as YAML or JSON in ``SEGFLOW_UNKNOWN_CONSENT``,
or ``@FILE`` naming a YAML/JSON file (the server's core and the CLI read the same)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from segflow.model.consent import UnknownConsent, parse_unknown_consent
from segflow.model.errors import DefinitionError, Problem

UNKNOWN_CONSENT_ENV: Final = "SEGFLOW_UNKNOWN_CONSENT"


def configured_unknown_consent(environ: Mapping[str, str] | None = None) -> UnknownConsent:
    """The rule ``SEGFLOW_UNKNOWN_CONSENT`` sets (deny everywhere when unset); raises
    DefinitionError naming the variable and each problem's path."""
    import yaml

    env = os.environ if environ is None else environ
    text = env.get(UNKNOWN_CONSENT_ENV, "").strip()
    if not text:
        return UnknownConsent()
    where = UNKNOWN_CONSENT_ENV
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DefinitionError([Problem(where, f"cannot read {path}: {e}")]) from None
    try:
        doc: Any = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DefinitionError([Problem(where, f"malformed YAML or JSON: {e}")]) from None
    return parse_unknown_consent(doc, where)
