"""HTTP helpers the adapters share: responses, content negotiation, health JSON, local paths, pages.

Nothing here knows about sessions beyond their reports: :class:`PlainResponse` is a status line,
headers and a body before an adapter hands them to its framework; :func:`wants_json` reads
``Accept``; :func:`health_json` and :func:`banner_html` render a
:class:`~sessionmw.HealthReport`; :func:`user_error_response` renders a
:class:`~sessionmw.UserFacingError` as JSON or an HTML page. What they write is in the current
request's language (:mod:`sessionmw.languages`), which their responses name in ``Content-Language``.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from sessionmw.health import HealthReport
from sessionmw.languages import current
from sessionmw.rendering import format_error
from sessionmw.texts import BACK, RECONNECT, local
from sessionmw.translation import Statement, statement

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from sessionmw.integrations.request import RequestView
    from sessionmw.translation import UserFacingError

__all__ = [
    "FORM_LIMIT",
    "RECONNECTED_QUERY",
    "PlainResponse",
    "accepts_json",
    "back_path",
    "banner_html",
    "error_page_html",
    "form_next_path",
    "health_json",
    "health_report_response",
    "html_page",
    "json_response",
    "just_reconnected",
    "next_path",
    "page_path",
    "private_cache_control",
    "status_line",
    "user_error_response",
    "wants_json",
    "with_reconnected",
]

_JSON_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
_HEALTH_HEADERS = [("Content-Type", "application/health+json"), ("Cache-Control", "no-store")]


class PlainResponse:
    """A status line, headers and a body, before they become a framework response."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def status_code(self) -> int:
        """The numeric status."""
        return int(self.status[:3])

    def send(
        self, start_response: StartResponse, extra: list[tuple[str, str]] | None = None, exc_info: Any = None
    ) -> list[bytes]:
        """Start the WSGI response and return its body."""
        headers = [*self.headers, *(extra or ()), ("Content-Length", str(len(self.body)))]
        if exc_info is None:
            start_response(self.status, headers)
        else:
            start_response(self.status, headers, exc_info)
        return [self.body]


def private_cache_control(value: str) -> str:
    """``value`` made safe for a response that sets a cookie: never stored by shared caches."""
    directives = [part.strip() for part in value.split(",") if part.strip()]
    lowered = [part.lower() for part in directives]
    if "no-store" in lowered or "private" in lowered:
        return value
    kept = [
        part for part in directives if part.lower() != "public" and not part.lower().startswith("s-maxage")
    ]
    return ", ".join([*kept, "private"])


def wants_json(environ: WSGIEnvironment, via_header: bool = False) -> bool:
    """True when the client prefers JSON to HTML (``Accept``); on a tie, API clients get JSON."""
    return accepts_json(environ.get("HTTP_ACCEPT", ""), via_header)


def accepts_json(accept: str | None, via_header: bool = False) -> bool:
    """True when an ``Accept`` header value prefers JSON to HTML; on a tie (or without one), API
    clients (``via_header``) get JSON."""
    if not accept:
        return via_header
    json_q = html_q = app_any = text_any = star = -1.0
    for item in accept.split(","):
        media, _, params = item.partition(";")
        media = media.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
                if not 0.0 <= quality <= 1.0 or math.isnan(quality):
                    quality = 0.0
        if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
            json_q = max(json_q, quality)
        elif media in ("text/html", "application/xhtml+xml"):
            html_q = max(html_q, quality)
        elif media == "application/*":
            app_any = max(app_any, quality)
        elif media == "text/*":
            text_any = max(text_any, quality)
        elif media == "*/*":
            star = max(star, quality)
    for_json = json_q if json_q >= 0 else app_any if app_any >= 0 else star
    for_html = html_q if html_q >= 0 else text_any if text_any >= 0 else star
    if for_json == for_html:
        return via_header
    return for_json > for_html


#: HTTP status of an error about the session itself, by its health code.
_HTTP_STATUS = {"expired": 401, "not_found": 401, "disconnected": 503}

_HEALTH_STATUS = {"healthy": "pass", "idle": "pass", "error": "warn", "degraded": "warn"}


def _health_status(report: HealthReport) -> str:
    status = _HEALTH_STATUS.get(report.status, "fail")
    if status == "pass" and not report.healthy:
        status = "warn"
    return status


def health_json(report: HealthReport) -> dict[str, Any]:
    """``report`` in the ``application/health+json`` shape; the full report is under ``session``.

    ``status`` is ``pass`` (healthy, idle), ``warn`` (errors, a failing custom check) or ``fail``
    (disconnected, expired, not found); each custom check is listed under ``checks``.
    """
    session = {key: value for key, value in report.items() if key != "session_id"}
    said = statement(report)
    session["statement"] = None if said is None else said.as_dict()  # what a page shows (one voice)
    checks = {
        check["name"]: [
            {
                "status": check.get("status") or ("pass" if check["healthy"] else "fail"),
                "output": check["message"],
            }
        ]
        for check in report.checks
    }
    return {
        "status": _health_status(report),
        "description": report.message,
        "notes": report.recovery,
        "output": report.context,
        "checks": checks,
        "session": session,
    }


def health_report_response(report: HealthReport, *, for_page: bool = False) -> PlainResponse:
    """``report`` as an ``application/health+json`` response: 200, or 503 when its status is ``fail``.

    :param for_page: always 200 (a page's own poll: the state is in the body, and a browser
        would log every 503 as an error in its console).
    """
    status = 200 if for_page or _health_status(report) != "fail" else 503
    body = json.dumps(health_json(report)).encode()
    return PlainResponse(status_line(status), [*_HEALTH_HEADERS, ("Content-Language", current())], body)


def json_response(status: int, data: Any, headers: Iterable[tuple[str, str]] = ()) -> PlainResponse:
    """``data`` as a JSON response that no cache stores, with ``headers`` added."""
    return PlainResponse(status_line(status), [*_JSON_HEADERS, *headers], json.dumps(data).encode())


def user_error_response(
    err: UserFacingError,
    *,
    as_json: bool,
    reconnect: str | None = None,
    page: str | None = None,
    problem_json: bool = True,
    status: int | None = None,
    instance: str | None = None,
    session: Mapping[str, Any] | None = None,
    situation: str | None = None,
    language: str | None = None,
) -> PlainResponse:
    """``err`` as an RFC 9457 problem document (:mod:`~sessionmw.integrations.problem`), as the
    JSON of :func:`~sessionmw.format_error` (``problem_json=False``: deprecated) or as an HTML page
    (``page``, the page's escaped body, e.g. from :func:`error_page_html`; by default ``err``
    rendered alone), in ``language`` (``Content-Language``; None: the request's,
    :func:`sessionmw.languages.current`).

    The status is 401 for an expired or unknown session, 503 with ``Retry-After`` for a
    disconnected session or a transient error, else 500; ``status`` chooses another.
    ``reconnect``, ``instance``, ``session`` and ``situation`` go into the JSON (see
    :func:`~sessionmw.integrations.problem.problem_document`; the deprecated shape has only
    ``reconnect``).
    """
    from sessionmw.rendering import format_error
    from sessionmw.translation import DEFAULT_RETRY_AFTER

    if status is None:
        status = _HTTP_STATUS.get(err.status or "", 503 if err.transient else 500)
    headers: list[tuple[str, str]] = [
        ("Cache-Control", "no-store"),
        ("Content-Language", current() if language is None else language),
    ]
    retry_after = None
    if err.transient:
        seconds = err.retry_after if err.retry_after is not None else DEFAULT_RETRY_AFTER
        retry_after = max(1, math.ceil(seconds))
        headers.append(("Retry-After", str(retry_after)))
    if as_json and problem_json:
        from sessionmw.integrations.problem import MEDIA_TYPE, problem_document

        document = problem_document(
            err,
            status=status,
            instance=instance,
            retry_after=retry_after,
            session=session,
            reconnect=reconnect,
            situation=situation,
        )
        headers.append(("Content-Type", MEDIA_TYPE))
        body = json.dumps(document).encode()
    elif as_json:
        data = format_error(err, "dict")
        if reconnect is not None:
            data["reconnect"] = reconnect
        headers.append(("Content-Type", "application/json"))
        body = json.dumps(data).encode()
    else:
        headers.append(("Content-Type", "text/html; charset=utf-8"))
        content = page if page is not None else format_error(err, "html")
        body = html_page(html.escape(err.title), content)
    return PlainResponse(status_line(status), headers, body)


#: The most of a form POST to ``reconnect`` that is read (its ``next`` field is a path).
FORM_LIMIT = 4096


def next_path(environ: WSGIEnvironment) -> str:
    """Where a form POST to ``reconnect`` goes back to: its ``next`` field if a local path, else ``/``."""
    try:
        length = min(int(environ.get("CONTENT_LENGTH") or 0), FORM_LIMIT)
    except ValueError:
        length = 0
    return form_next_path(environ["wsgi.input"].read(length) if length > 0 else b"")


def form_next_path(form: bytes) -> str:
    """The ``next`` field of a url-encoded form body if it is a local path, else ``/``."""
    fields = parse_qs(form.decode("utf-8", "replace"))  # a browser posts it encoded; curl may not
    return _local_path(fields.get("next", ["/"])[0])


#: What a ``Location`` path may hold as it is: RFC 3986's unreserved and reserved characters, and ``%``.
_LOCATION_SAFE = "/?#[]@!$&'()*+,;=:~%-._"


def _local_path(target: str) -> str:
    r"""``target`` if it is a path on this origin, percent-encoded to printable ASCII; else ``/``.

    Refused: anything not starting with one ``/`` (scheme-relative ``//host`` and absolute URLs),
    and any control character, whitespace or backslash, since browsers drop tabs and line breaks
    and read ``\`` as ``/`` (WHATWG URL parsing), which can turn ``/\t/host`` into ``//host``.
    """
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(not char.isprintable() or char.isspace() for char in target)
    ):
        return "/"
    return quote(target, safe=_LOCATION_SAFE)


_REASONS = {
    200: "OK",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def status_line(status: int) -> str:
    """The WSGI status line of ``status``, e.g. ``"503 Service Unavailable"``."""
    return f"{status} {_REASONS.get(status, 'Error')}"


def html_page(title: str, content: str) -> bytes:
    """A complete HTML page in UTF-8; ``title`` and ``content`` go in as they are (escape them first).

    It carries the banner stylesheet (:func:`~sessionmw.integrations.style.stylesheet`), so a
    friendly error page looks like the Dash banner, also at phone width.
    """
    from sessionmw.integrations.style import stylesheet

    return (
        f'<!doctype html>\n<html lang="{html.escape(current())}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{stylesheet()}</style></head>\n"
        f'<body class="sessionmw-page">\n{content}\n</body></html>\n'
    ).encode()


def banner_html(
    report: HealthReport | None,
    *,
    prefix: str = "/_sessionmw/",
    next_path: str = "/",
    reconnected: bool = False,
) -> str:
    """The status banner for ``report`` as escaped HTML; empty when there is nothing to say.

    It says what the Dash banner says (:func:`sessionmw.translation.statement`, with the same SVG
    icon, :data:`~sessionmw.integrations.style.STATUS_ICONS`), less any step promising inputs
    kept (a server-rendered page does not keep them). A disconnected session's banner has a
    Reconnect button (a form POST to ``<prefix>reconnect``) that comes back to ``next_path``
    (percent-encoded here; a path that is not local comes back to ``/``), where ``reconnected``
    (True right after it succeeded) shows the brief "Reconnected" confirmation.
    """
    if report is None:
        return ""
    said = statement(report, reconnected=reconnected and report.healthy, inputs_kept=False)
    if said is None:
        return ""
    return _statement_html(said, "status", prefix=prefix, next_path=next_path)


#: The query a page comes back with after a Reconnect that worked (its banner then confirms it).
RECONNECTED_QUERY = "sessionmw=reconnected"


def with_reconnected(path: str) -> str:
    """``path`` with :data:`RECONNECTED_QUERY` added: where a Reconnect form comes back to."""
    return f"{path}{'&' if '?' in path else '?'}{RECONNECTED_QUERY}"


def just_reconnected(environ: WSGIEnvironment) -> bool:
    """True for the page a Reconnect that worked came back to (see :func:`with_reconnected`)."""
    return RECONNECTED_QUERY in environ.get("QUERY_STRING", "").split("&")


def back_path(request: RequestView) -> str:
    """Where an error page's way back leads: the page the request came from (its ``Referer``, when
    on this host), else the app's root."""
    root = quote(request.root_path.encode("latin-1", "replace"), safe="/") + "/"
    referer = urlsplit(request.header("referer") or "")
    if referer.netloc and referer.netloc == request.header("host") and referer.path:
        path = _local_path(referer.path + (f"?{referer.query}" if referer.query else ""))
        return root if path == "/" and root != "/" else path
    return root


def error_page_html(
    err: UserFacingError, report: HealthReport | None, *, prefix: str = "/_sessionmw/", back: str = "/"
) -> str:
    """An error page's body: what the banner says for ``report`` and the failure ``err`` (the same
    words and icon as the Dash banner; with Reconnect when the failure disconnected the session),
    and a way back to ``back``. Without a report (no session), ``err`` as it is."""
    said = None if report is None else statement(report, failure=err, inputs_kept=False)
    if said is None:
        content = format_error(err, "html")
    else:
        content = _statement_html(said, "alert", prefix=prefix, next_path=back)
    if err.detail:  # debug mode only
        content += f'<pre class="sessionmw-error-detail">{html.escape(err.detail)}</pre>'
    target = html.escape(quote(back, safe=_LOCATION_SAFE))
    return f'{content}<p class="sessionmw-back"><a href="{target}">{html.escape(local(BACK))}</a></p>'



def _statement_html(said: Statement, role: str, *, prefix: str, next_path: str) -> str:
    """A :class:`~sessionmw.translation.Statement` as the banner's HTML (see :func:`banner_html`)."""
    from sessionmw.integrations.style import ICONS, STATUS_ICONS

    icon = STATUS_ICONS.get(said.status, ICONS["warning"])
    steps = "".join(f"<li>{html.escape(step)}</li>" for step in said.steps)
    status, tone = html.escape(said.status), html.escape(said.tone)
    parts = [
        f'<div class="sessionmw-banner sessionmw-{status} sessionmw-tone-{tone}" role="{role}">',
        f'<img class="sessionmw-icon" src="{html.escape(icon)}" alt="" width="18" height="18">',
        f"<strong>{html.escape(said.title)}</strong> — <span>{html.escape(said.message)}</span>",
        f"<ol>{steps}</ol>" if steps else "",
    ]
    if said.context:
        parts.append(f"<p>{html.escape(said.context)}</p>")
    if "reconnect" in said.actions:
        parts.append(
            f'<form method="post" action="{html.escape(prefix)}reconnect">'
            f'<input type="hidden" name="next" value="{html.escape(quote(next_path, safe=_LOCATION_SAFE))}">'
            f'<button type="submit">{html.escape(local(RECONNECT))}</button></form>'
        )
    parts.append("</div>")
    return "".join(parts)


def page_path(environ: WSGIEnvironment) -> str:
    """The request's path from the root (``SCRIPT_NAME`` and ``PATH_INFO``), percent-encoded from
    its bytes (PEP 3333 hands them over as latin-1)."""
    path: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "") or "/"
    try:
        return quote(path.encode("latin-1"), safe="/")
    except UnicodeEncodeError:  # a server that decoded the path itself
        return quote(path, safe="/", errors="backslashreplace")
