"""schemathesis hooks for /openapi.json runs, from outside (SCHEMATHESIS_HOOKS) and in test_openapi.py.

XML and query strings carry only text: a "wrong type" schemathesis puts there (null, 5, true) arrives
as the text "null", "5", "true", which the document allows. Its own checks know this for forms and for
single query parameters, not for XML bodies or a query of fields (one exploded object parameter), so a
negative case the server accepts is dropped when what was sent, read as the server reads it, satisfies
the document; any other acceptance stays a failure.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import schemathesis
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.parameters import ParameterLocation
from schemathesis.openapi.checks import RejectedPositiveData

from webhooks.providers import ParseError
from webhooks.web.payload import SECRET_FIELDS, parse_xml

XML_TYPES = ("application/xml", "text/xml")


def xml_negation_vanished(case: Any, sent: bytes | str | None) -> bool:
    """True when the XML body as sent satisfies its media type's schema: nothing negative arrived."""
    alternative = case.operation.get_body_for_media_type(case.media_type)
    if alternative is None or sent is None:
        return False
    try:
        fields = parse_xml(sent)
    except ParseError:
        return False
    return bool(alternative.is_valid(fields))


def query_negation_vanished(case: Any, url: str) -> bool:
    """True when the query string as sent satisfies the operation's one exploded object parameter."""
    parameters = [p for p in case.operation.query if p.name not in SECRET_FIELDS]  # not the ?token= scheme's
    if len(parameters) != 1 or not parameters[0].definition.get("explode"):
        return False
    fields = {k: v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True) if k not in SECRET_FIELDS}
    return bool(parameters[0].is_valid(fields))


def negation_vanished(case: Any, request: Any) -> bool:
    """True when every part schemathesis made invalid is valid as it was sent."""
    meta = case.meta
    negative = [location for location, info in (meta.components if meta else {}).items() if info.mode.is_negative]
    for location in negative:
        if location == ParameterLocation.BODY and _is_xml(case):
            if not xml_negation_vanished(case, request.body):
                return False
        elif location == ParameterLocation.QUERY:
            if not query_negation_vanished(case, request.url):
                return False
        else:
            return False
    return bool(negative)


def _is_xml(case: Any) -> bool:
    return (case.media_type or "").split(";")[0].strip() in XML_TYPES


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but a negative case whose text, once sent, is valid, or the reverse for XML.

    The reverse: XML cannot carry every character (control characters are left out), so a valid
    value can arrive empty; a refused XML body that, as sent, breaks the document was not valid data.
    """
    if isinstance(failure, AcceptedNegativeData):
        return not negation_vanished(case, response.request)
    if isinstance(failure, RejectedPositiveData) and _is_xml(case):
        return xml_negation_vanished(case, response.request.body)
    return True
