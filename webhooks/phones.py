"""Phone numbers to E.164, with the phonenumbers library."""

from __future__ import annotations

import functools
import re

import phonenumbers

# What providers mostly send is already E.164; full validation costs ~0.1 ms a number.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def to_e164(number: str | None, region: str | None = None) -> str | None:
    """`+61409000000` for anything we can read as a valid number; the input, trimmed, otherwise.

    Providers write numbers three ways: `+61409000000`, `61409000000` (international
    without the plus) and `0409000000` (national, read with `region`).
    """
    if number is None:
        return None
    text = str(number).strip()
    if not text:
        return None
    if _E164.fullmatch(text):
        return text
    return _normalise(text, region)


@functools.lru_cache(maxsize=8192)  # the same few thousand customers reply and receive again and again
def _normalise(text: str, region: str | None) -> str:
    candidates = [(text, region)]
    if not text.startswith("+"):
        candidates.append(("+" + text, None))  # international digits without the plus
    for candidate, candidate_region in candidates:
        try:
            parsed = phonenumbers.parse(candidate, candidate_region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return text
