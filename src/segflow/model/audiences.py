"""Ad audience identifiers: emails and phones normalised and SHA-256 hashed the way
each ad platform matches them, so an uploaded hash equals the platform's own.

- email, both platforms: surrounding whitespace trimmed, lower case.  Google
  (Customer Match / enhanced conversions normalisation) also removes every ``.`` from
  the local part of ``gmail.com`` and ``googlemail.com`` addresses; Meta does not.
- phone: parsed to E.164 (``+``, country code, national number, nothing else) with
  ``phonenumbers``, a number without a country code read in the destination's
  default region.  Google hashes the E.164 text with its ``+``; Meta hashes the
  digits alone (country code included, no ``+``, no leading zeros).
- hash: SHA-256 of the UTF-8 text, lower-case hex.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import phonenumbers

PLATFORMS: Final = ("meta", "google")
HEADERS: Final = {"meta": ("email", "phone"), "google": ("Email", "Phone")}
"""The column names of each platform's customer-list upload file, hashed values."""
GMAIL_DOMAINS: Final = frozenset({"gmail.com", "googlemail.com"})


def is_region(code: Any) -> bool:
    """Whether ``code`` is a region phone numbers can be read in (ISO 3166 alpha-2)."""
    return isinstance(code, str) and code in phonenumbers.SUPPORTED_REGIONS


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def normalize_email(value: Any, platform: str) -> str | None:
    """The email as ``platform`` hashes it; None when there is no address."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return None
    if platform == "google" and domain in GMAIL_DOMAINS:
        email = f"{local.replace('.', '')}@{domain}"
    return email


def normalize_phone(value: Any, platform: str, region: str | None) -> str | None:
    """The phone as ``platform`` hashes it (E.164; Meta without the ``+``); None when it
    is not a valid number (or has no country code and no default region)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164.lstrip("+") if platform == "meta" else e164


def hashed_row(email: Any, phone: Any, platform: str, region: str | None) -> tuple[str, str] | None:
    """(hashed email, hashed phone) of one member, an empty text where one is missing;
    None when neither can be matched on."""
    e = normalize_email(email, platform)
    p = normalize_phone(phone, platform, region)
    if e is None and p is None:
        return None
    return (sha256_hex(e) if e else "", sha256_hex(p) if p else "")
