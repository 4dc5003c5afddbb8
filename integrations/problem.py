"""RFC 9457 problem details: what an API client gets for a refusal or an error, and their check.

A client that prefers JSON to HTML (or sends the session id in the ``X-Session-ID`` header and
lets ``Accept`` not decide) gets an ``application/problem+json`` document instead of an HTML
page. Its members:

- the standard ones (RFC 9457 §3.1): ``type``, a stable URI per situation
  (:data:`PROBLEM_BASE` and the situation's name, e.g.
  ``https://sessionmw.readthedocs.io/problems/session-expired``; every one is listed in
  ``docs/api-clients.md``), ``title``, ``status`` (the HTTP status), ``detail`` (what happened,
  in one sentence) and ``instance`` (the request's path, without its query);
- extension members (§3.2): ``recovery`` (the steps, in order), ``context``, ``severity``,
  ``transient``, ``retry_after`` (the seconds of the ``Retry-After`` header, or null), and, where
  they apply, ``session`` (the session's ``status``, ``state`` and ``error_count``),
  ``reconnect`` (the URL that reconnects a disconnected session) and ``debug`` (type, text and
  traceback of the exception, in debug mode only).

:func:`problem_document` builds one; :func:`problem_errors` checks any document against RFC 9457
§3 (a test of an app's own API can use it too).

.. code-block:: python

    from sessionmw import translate
    from sessionmw.integrations.problem import problem_document, problem_errors

    document = problem_document(translate(TimeoutError()), status=503, retry_after=5)
    assert document["type"] == "https://sessionmw.readthedocs.io/problems/timeout"
    assert problem_errors(document, status=503) == []
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from sessionmw.texts import ENDPOINTS, fill
from sessionmw.translation import SITUATIONS, UserFacingError, plain

__all__ = [
    "APP_ERROR",
    "MEDIA_TYPE",
    "PROBLEM_BASE",
    "PROBLEM_TYPES",
    "STANDARD_MEMBERS",
    "endpoint_error",
    "problem_document",
    "problem_errors",
    "problem_type",
]

#: The media type of a problem document (RFC 9457 §3).
MEDIA_TYPE: Final = "application/problem+json"
#: Where the ``type`` URIs live: each situation's page is this and its name.
PROBLEM_BASE: Final = "https://sessionmw.readthedocs.io/problems/"
#: The situation of an error the app translated itself (its own :class:`~sessionmw.UserFacingError`
#: or :func:`~sessionmw.register_translation` entry): its title and detail say what happened.
APP_ERROR: Final = "app-error"
#: Situation -> its ``type`` URI: the built-in situations (:data:`sessionmw.translation.SITUATIONS`),
#: the endpoints' (:data:`sessionmw.texts.ENDPOINTS`) and :data:`APP_ERROR`.
PROBLEM_TYPES: Final[Mapping[str, str]] = {
    situation: PROBLEM_BASE + situation for situation in (*SITUATIONS, *ENDPOINTS, APP_ERROR)
}
#: The members RFC 9457 defines (§3.1); an extension member never takes one of these names.
STANDARD_MEMBERS: Final = frozenset({"type", "title", "status", "detail", "instance"})


def problem_type(situation: str | None) -> str:
    """The ``type`` URI of ``situation``; :data:`APP_ERROR`'s for None or a situation sessionmw
    does not know (an app's own)."""
    return PROBLEM_TYPES.get(situation or APP_ERROR, PROBLEM_TYPES[APP_ERROR])


def endpoint_error(situation: str, *, allow: str = "") -> UserFacingError:
    """The error of a request under the endpoints' prefix that cannot be served, in the words of
    :data:`sessionmw.texts.ENDPOINTS`: ``endpoint-not-found`` or ``method-not-allowed`` (``allow``:
    the methods the endpoint answers, e.g. ``"GET, HEAD"``).

    :raises KeyError: for another situation.
    """
    words = ENDPOINTS[situation]
    return UserFacingError(
        words.message,
        title=words.title,
        recovery=[fill(step, {"allow": allow}) for step in words.recovery],
        severity="warning",
        situation=situation,
    )


def problem_document(
    err: UserFacingError,
    *,
    status: int,
    instance: str | None = None,
    retry_after: int | None = None,
    session: Mapping[str, Any] | None = None,
    reconnect: str | None = None,
    situation: str | None = None,
) -> dict[str, Any]:
    """``err`` as an RFC 9457 problem document (a JSON-ready dict).

    :param status: the HTTP status the document is sent with (its ``status`` member).
    :param instance: the request's path (a URI reference); None leaves the member out.
    :param retry_after: the seconds of the response's ``Retry-After`` header, if it has one.
    :param session: the session's ``status``, ``state`` and ``error_count`` (a health report's
        values), when the answer is about a session.
    :param reconnect: the URL that reconnects a disconnected session.
    :param situation: the situation, when it is not ``err``'s own (the endpoints').
    :raises ValueError: for a ``status`` that is not an HTTP error status (400 to 599).
    """
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"a problem document's status is an HTTP error status (400-599), not {status!r}")
    document: dict[str, Any] = {
        "type": problem_type(situation or err.situation),
        "title": err.title,
        "status": status,
        "detail": plain(err.message),
    }
    if instance is not None:
        document["instance"] = instance
    document["recovery"] = list(err.recovery)
    document["context"] = err.context
    document["severity"] = err.severity
    document["transient"] = err.transient
    document["retry_after"] = retry_after
    if session is not None:
        document["session"] = {key: session.get(key) for key in ("status", "state", "error_count")}
    if reconnect is not None:
        document["reconnect"] = reconnect
    if err.detail:
        document["debug"] = err.detail
    return document


#: An extension member's name as RFC 9457 §3.2 asks for it: a letter, then letters, digits or
#: ``_``, three characters at least.
_EXTENSION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,}")
#: What a URI reference (RFC 3986 §4.1) is written with: unreserved, reserved, and ``%`` escapes.
_URI_REFERENCE = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def _uri_reference_error(value: Any) -> str | None:
    """Why ``value`` is not a URI reference (RFC 3986 §4.1), or None."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not _URI_REFERENCE.fullmatch(value):
        return f"{value!r} is not a URI reference (RFC 3986)"
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        return f"{value!r} is not a URI reference: {exc}"
    head = value.split("/", 1)[0]
    if ":" in head and not (parts.scheme and _SCHEME.fullmatch(head.partition(":")[0])):
        return f"{value!r} is not a URI reference: its first segment has a ':' but no valid scheme"
    return None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"member(s) given twice: {', '.join(repeated)}")
    return dict(pairs)


def problem_errors(document: Mapping[str, Any] | str | bytes, *, status: int | None = None) -> list[str]:
    """What makes ``document`` not a problem document as RFC 9457 §3 defines one; empty when it is.

    Checked: a JSON object whose members appear once each (so no extension member clashes with a
    standard one); ``type`` and ``instance`` URI references; ``title`` and ``detail`` strings;
    ``status`` a whole number from 100 to 599, and, with ``status``, the HTTP status the document
    was sent with; extension members named as §3.2 recommends (three characters at least).

    :param document: the document, parsed or as the response's body (then repeated members are
        found too).
    :param status: the HTTP status of the response that carried it.
    """
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document, object_pairs_hook=_no_duplicates)
        except ValueError as exc:
            return [f"not a JSON object: {exc}"]
    if not isinstance(document, Mapping):
        return [f"a problem document is a JSON object, not {type(document).__name__}"]
    errors = []
    for name in ("type", "instance"):
        if name in document:
            reason = _uri_reference_error(document[name])
            if reason is not None:
                errors.append(f"{name}: {reason}")
    for name in ("title", "detail"):
        if name in document and not isinstance(document[name], str):
            errors.append(f"{name}: must be a string, not {type(document[name]).__name__}")
    if "status" in document:
        value = document["status"]
        if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
            errors.append(f"status: must be a whole number from 100 to 599, not {value!r}")
        elif status is not None and value != status:
            errors.append(f"status: {value} is not the HTTP status the document was sent with ({status})")
    for name in document:
        if name not in STANDARD_MEMBERS and not _EXTENSION_NAME.fullmatch(str(name)):
            errors.append(f"{name!r}: an extension member's name is a letter, then letters, digits or _")
    return errors
