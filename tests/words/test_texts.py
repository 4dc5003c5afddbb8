"""One catalogue for every user text: what the banner, the HTML page, JSON and the
CLI say in every situation is found in :mod:`sessionmw.texts`, and no other module holds a sentence.
Numbers and durations in words: whole sentences with a singular and a plural form, never a noun
with an "s" glued on ("expires in 1 minutes", "no activity for 0 minutes")."""

from __future__ import annotations

import ast
import html.parser
import json
import math
import re
import string
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from sessionmw import BreakerOpenError, SessionManager, texts
from sessionmw._breaker import _REGISTRY as BREAKERS
from sessionmw._breaker import Breaker
from sessionmw._errors import DataLoadError, SessionExpiredError
from sessionmw._settings import Settings
from sessionmw.health import HealthReport
from sessionmw.integrations.http import banner_html, health_json, user_error_response
from sessionmw.integrations.problem import endpoint_error
from sessionmw.rendering import format_error, recovery_text
from sessionmw.testing import FakeClock, force_breaker
from sessionmw.texts import MESSAGES, Plural, Template, catalogue, duration
from sessionmw.translation import (
    RECONNECTED,
    UNREACHABLE,
    UserFacingError,
    statement,
    translate,
    translations,
)

ROOT = Path(__file__).resolve().parents[2]

# -- is a text from the catalogue? -------------------------------------------------------------

#: Placeholders filled with data (numbers, names an app chose), not with catalogue words.
DATA = {"n", "errors_left", "timeout_minutes", "lifetime_hours", "service", "check", "allow"}


def _templates() -> list[str]:
    found: list[str] = []
    for entry in catalogue():
        found += [entry.one, entry.other] if isinstance(entry, Plural) else [entry]
    return found


@cache
def _patterns() -> list[tuple[re.Pattern[str], tuple[str, ...]]]:
    """Each template as a pattern (and its placeholders), with and without its leading emoji."""
    patterns = []
    for template in _templates():
        for variant in {template, re.sub(r"^[^\w{]+", "", template)}:  # with and without the emoji
            regex, names = "", list[str]()
            for literal, field, _spec, _conversion in string.Formatter().parse(variant):
                regex += re.escape(literal)
                if field is not None:
                    regex += f"(?P<g{len(names)}>.+?)"
                    names.append(field)
            patterns.append((re.compile(regex, re.DOTALL), tuple(names)))
    return patterns


def from_catalogue(text: str) -> bool:
    """True when ``text`` is a catalogue sentence, its placeholders filled with data or with
    catalogue sentences in turn."""
    text = text.strip()
    if not re.search(r"[A-Za-z]", text):
        return True  # no words: punctuation, numbers, an icon
    for pattern, names in _patterns():
        match = pattern.fullmatch(text)
        if match and all(
            name in DATA or (len(match[f"g{index}"]) < len(text) and from_catalogue(match[f"g{index}"]))
            for index, name in enumerate(names)
        ):
            return True
    return False


def not_in_catalogue(texts_seen: list[str]) -> list[str]:
    return [text for text in texts_seen if not from_catalogue(text)]


class _Text(html.parser.HTMLParser):
    """The text a browser shows of an HTML fragment or page (not the style sheet)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag == "style"
        self.found += [value for name, value in attrs if name in ("title", "alt", "value") and value]

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag == "style"

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.found.append(data)


def html_texts(markup: str | bytes) -> list[str]:
    parser = _Text()
    parser.feed(markup.decode() if isinstance(markup, bytes) else markup)
    return [text for text in parser.found if not text.startswith("/")]  # the reconnect form's next path


#: JSON keys whose values are data (names an app chose, a URL), not words.
DATA_KEYS = {"service", "name", "reconnect", "prefix", "styles", "theme"}


def json_texts(data: Any) -> Iterator[str]:
    """Every string value of a JSON document, except codes (single words), keys and data."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key not in DATA_KEYS:
                yield from json_texts(value)
    elif isinstance(data, list):
        for value in data:
            yield from json_texts(value)
    elif isinstance(data, str) and " " in data.strip():
        yield data


def text_lines(text: str) -> list[str]:
    """The lines of a plain-text rendering, without its layout (step numbers, the context mark)."""
    return [re.sub(r"^\s*(\d+\.|📝)\s*", "", line) for line in text.splitlines() if line.strip()]


# -- every situation -------------------------------------------------------------------------------


def _raising_check(session_id: str) -> bool:
    raise ZeroDivisionError(session_id)


@pytest.fixture(name="reports")
def _reports(clock: FakeClock) -> Iterator[dict[str, HealthReport]]:
    """A health report for every situation a session can be in."""
    BREAKERS.clear()
    manager = SessionManager(Settings(max_error_threshold=3), clock=clock)
    found: dict[str, HealthReport] = {}

    def new() -> str:
        return manager.create_session().session_id

    found["healthy"] = manager.check_health(new())
    idle = new()
    for cause, failure in (("network", ConnectionError("down")), ("backend", DataLoadError("gaps"))):
        session = new()
        manager.record_error(session, failure)
        found[f"error:{cause}"] = manager.check_health(session)
        for _ in range(2):
            manager.record_error(session, failure)
        found[f"disconnected:{cause}"] = manager.check_health(session)
    unknown = new()
    for _ in range(3):
        manager.record_error(unknown, "it failed")  # no exception type: the cause is unknown
    found["disconnected:unknown"] = manager.check_health(unknown)
    ended = new()
    manager.end_session(ended)
    found["ended"] = manager.check_health(ended)
    found["not_found"] = manager.check_health("no-such-session")
    clock.advance(manager.policy.idle_after + 1)
    found["idle"] = manager.check_health(idle)
    market = Breaker("market-data", manager=manager, clock=clock)
    for state in ("open", "forced_open", "half_open"):
        force_breaker(market, state)
        found[f"degraded:{state}"] = manager.check_health(idle)
    force_breaker(market, "closed")
    checked = new()
    manager.add_health_check("prices", lambda session_id: False)
    found["check_failed"] = manager.check_health(checked)
    manager.add_health_check("prices", _raising_check)
    found["check_raised"] = manager.check_health(checked)
    manager.remove_health_check("prices")
    clock.advance(manager.policy.timeout + 1)
    found["expired"] = manager.check_health(idle)
    old = SessionManager(Settings(absolute_timeout_hours=1, session_timeout_minutes=120), clock=clock)
    session = old.create_session().session_id
    for _ in range(5):
        clock.advance(10 * 60)
        old.update_session_activity(session)
    clock.advance(15 * 60)  # 65 minutes old, 15 of them idle
    found["lifetime_exceeded"] = old.check_health(session)
    yield found
    BREAKERS.clear()
    manager.close()
    old.close()


FAILURES: list[BaseException | None] = [
    None,
    ConnectionError("refused"),
    RuntimeError("This session is not running"),
    DataLoadError("prices.csv has gaps"),
]


def test_the_reports_cover_every_situation(reports: dict[str, HealthReport]) -> None:
    """The fixture reaches every health status and every health message of the catalogue."""
    statuses = {report.status for report in reports.values()}
    assert statuses == {"healthy", "idle", "error", "disconnected", "expired", "not_found", "degraded"}
    assert (
        reports["lifetime_exceeded"].title == "Session expired" and reports["ended"].title == "Session ended"
    )
    assert reports["check_failed"].title == "Service unavailable"


def test_every_report_and_statement_speaks_from_the_catalogue(reports: dict[str, HealthReport]) -> None:
    """The health JSON (with its statement), the HTML banner and the CLI's guidance of every
    situation, with every kind of failure, say only catalogue sentences."""
    seen: list[str] = []
    for report in reports.values():
        seen += json_texts(json.loads(json.dumps(health_json(report))))
        seen += html_texts(banner_html(report))
        seen += text_lines(recovery_text(report))
        for failure in FAILURES:
            said = statement(report, failure=failure)
            if said is not None:
                seen += json_texts(said.as_dict())
    seen += [*json_texts(RECONNECTED.as_dict()), *json_texts(UNREACHABLE.as_dict())]
    assert len(seen) > 100
    assert not_in_catalogue(seen) == []


def test_a_page_that_keeps_no_inputs_is_never_promised_them(reports: dict[str, HealthReport]) -> None:
    """A server-rendered page (``inputs_kept=False``: the HTTP banner, the error page) never
    promises the user's inputs, in any situation, e.g. the banner of a session that just expired."""
    promising = [
        step
        for report in reports.values()
        for failure in FAILURES
        for said in [statement(report, failure=failure)]
        if said is not None
        for step in said.steps
        if "inputs" in step.lower()
    ]
    assert promising  # what the Dash page says: the rule below has something to drop
    for report in reports.values():
        for failure in FAILURES:
            said = statement(report, failure=failure, inputs_kept=False)
            assert said is None or not [step for step in said.steps if "inputs" in step.lower()]
        assert "inputs" not in banner_html(report).lower()


def _errors() -> list[UserFacingError]:
    """Every built-in translation, a breaker's refusals, and the session errors."""
    samples: list[BaseException] = [
        ConnectionError("x"),
        TimeoutError("x"),
        BrokenPipeError("x"),
        PermissionError("x"),
        FileNotFoundError("x"),
        MemoryError(),
        RuntimeError("This session is not running"),
        SessionExpiredError("x"),
        KeyError("not registered: the fallback"),
    ]
    for matcher, _entry in translations():
        if isinstance(matcher, type):
            try:
                samples.append(matcher("x"))
            except TypeError:
                continue
    errors = [translate(exc) for exc in samples]
    errors += [BreakerOpenError("b", "market data", seconds) for seconds in (0.5, 1, 7, None)]
    errors += [endpoint_error("endpoint-not-found"), endpoint_error("method-not-allowed", allow="POST")]
    return errors


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "html"])
def test_every_error_page_speaks_from_the_catalogue(as_json: bool) -> None:
    """An error as the HTTP adapters answer it (JSON or the HTML page) and as plain text."""
    seen: list[str] = []
    for err in _errors():
        body = user_error_response(err, as_json=as_json, reconnect="/_sessionmw/reconnect").body
        seen += list(json_texts(json.loads(body))) if as_json else html_texts(body)
        seen += text_lines(format_error(err, "text")) + html_texts(format_error(err, "html"))
    assert len(seen) > 50
    assert not_in_catalogue(seen) == []


def test_the_dash_banner_and_alert_speak_from_the_catalogue() -> None:
    """The Dash banner's layout (its buttons, the texts its browser code shows) and the alert."""
    pytest.importorskip("dash")
    from sessionmw.integrations.dash_banner import error_alert, status_banner

    def strings(component: Any) -> Iterator[str]:
        if isinstance(component, str):
            yield component
        elif isinstance(component, (list, tuple)):
            for child in component:
                yield from strings(child)
        elif hasattr(component, "to_plotly_json"):
            props = component.to_plotly_json()["props"]
            for key in ("children", "title"):
                yield from strings(props.get(key))
            if isinstance(props.get("data"), dict):
                yield from json_texts(props["data"])

    seen = list(strings(status_banner(theme="plain"))) + list(strings(status_banner(theme="bootstrap")))
    assert "Reconnect" in seen
    for err in _errors():
        seen += strings(error_alert(err))
    assert not_in_catalogue(seen) == []


def test_a_sentence_outside_the_catalogue_is_caught() -> None:
    """The check is not vacuous: a reworded sentence, or words around a placeholder, are found."""
    assert from_catalogue("The market data service is paused; we will try again in 3 seconds")
    assert from_catalogue("Your session is idle: no activity for 2 hours 5 minutes")
    assert not from_catalogue("The server no longer knows your session.")
    assert not from_catalogue("Your session is idle: no activity for a long while")


# -- no sentence outside the catalogue ---------------------------------------------------------

#: Modules whose sentences are not for the end user, and why.
NOT_USER_TEXT = {
    "sessionmw/__main__.py": "the operator command's help",
    "sessionmw/demo.py": "the demo command's options and help, read by the developer who starts it",
    "sessionmw/tour.py": "the tour's narration for a developer (its session guidance is recovery_text)",
    "sessionmw/metrics.py": "Prometheus help texts, read by operators",
    "sessionmw/_errors.py": "technical exception texts: translate() replaces them for users",
}
#: Single strings that are not for the end user, by module.
NOT_USER_STRINGS = {
    # The accepted words of a yes/no store option, in a ConfigurationError for the developer.
    ("sessionmw/stores/options.py", "True or False, or one of "),
}
#: A sentence: a capital (after any emoji), then at least two more words, two of them in lower case.
SENTENCE = re.compile(r"[^A-Za-z]*[A-Z][a-z']*(?: +\S+){2,}")
LOWER_WORD = re.compile(r" [a-z][a-z'-]*\b")


def _not_scanned(tree: ast.AST) -> set[int]:
    """Docstrings, bare string statements, raised exceptions' and log calls' texts, reprs."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            skipped.add(id(node.value))
        elif (
            isinstance(node, ast.Raise)
            or (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr
                in ("debug", "info", "warning", "error", "exception", "critical", "warn", "log")
            )
            or (isinstance(node, ast.FunctionDef) and node.name == "__repr__")
        ):
            skipped.update(id(sub) for sub in ast.walk(node))
    return skipped


def sentences(path: Path) -> Iterator[str]:
    """The string constants of ``path`` that read like a sentence (an f-string's parts joined)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _not_scanned(tree)
    inside_fstrings = {
        id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values
    }
    for node in ast.walk(tree):
        if id(node) in skipped or id(node) in inside_fstrings:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(
                str(part.value) if isinstance(part, ast.Constant) else "{}" for part in node.values
            )
        else:
            continue
        if SENTENCE.fullmatch(text.strip()) and len(LOWER_WORD.findall(text)) >= 2:
            yield text


def test_no_module_but_the_catalogue_holds_a_user_sentence() -> None:
    """Outside sessionmw/texts.py, sessionmw/ and integrations/ hold no sentence a user reads."""
    modules = [*sorted((ROOT / "sessionmw").rglob("*.py")), *sorted((ROOT / "integrations").rglob("*.py"))]
    found = []
    for path in modules:
        name = path.relative_to(ROOT).as_posix()
        if (
            name == "sessionmw/texts.py"
            or name.startswith("sessionmw/integrations/")
            or name in NOT_USER_TEXT
        ):
            continue
        found += [(name, text) for text in sentences(path) if (name, text) not in NOT_USER_STRINGS]
    assert found == []


def test_the_scan_finds_a_sentence(tmp_path: Path) -> None:
    """The scan is not vacuous: a user sentence in code is found; a log message, an exception's
    text and a docstring are not."""
    module = tmp_path / "m.py"
    module.write_text(
        '"""A docstring is not user text at all."""\n'
        "import logging\n"
        'TITLE = "⚠️ Your session was lost in the woods"\n'
        'logging.getLogger("x").warning("the store is not reachable now")\n'
        "def f(name: str) -> str:\n"
        "    if not name:\n"
        '        raise ValueError("a name is needed for this")\n'
        '    return f"The {name} service is gone for good"\n',
        encoding="utf-8",
    )
    assert list(sentences(module)) == [
        "⚠️ Your session was lost in the woods",
        "The {} service is gone for good",
    ]


def test_plural_sentences_name_their_number() -> None:
    """Every plural sentence has both forms, and both name the number's placeholder (languages
    other than English use the singular for more numbers than 1)."""
    plurals: list[Template] = [entry for entry in catalogue() if isinstance(entry, Plural)]
    assert plurals
    for entry in plurals:
        assert isinstance(entry, Plural)
        for form in (entry.one, entry.other):
            assert "{" + entry.count + "}" in form, form


def test_the_seeds_messages_keep_their_values() -> None:
    """The seed's ``health['message']`` is a view of the catalogue, with the seed's words."""
    assert texts.MESSAGES["expired"].message == "⏱️ Your session has expired due to inactivity"


def test_placeholders_are_named() -> None:
    """Every placeholder has a name (a translator may reorder them); no positional ``{}``."""
    for template in _templates():
        fields = [
            field for _literal, field, _spec, _conv in string.Formatter().parse(template) if field is not None
        ]
        assert all(field.isidentifier() for field in fields), template


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        pytest.param(0, "0 errors left", id="zero"),
        pytest.param(1, "1 error left", id="one"),
        pytest.param(2, "2 errors left", id="two"),
    ],
)
def test_plural(count: int, expected: str) -> None:
    """The plural sentence is used unless the count is exactly 1; the count's placeholder is named."""
    left = Plural("{left} error left", "{left} errors left", count="left")
    assert left.format(left=count) == expected


def test_the_error_context_is_a_plural_sentence() -> None:
    """The report's "more errors" context is one sentence per form, not a noun made plural."""
    context = MESSAGES["error"].context
    assert isinstance(context, Plural) and context.count == "errors_left"
    assert context.one != context.other


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(0, "less than a minute", id="zero"),
        pytest.param(59.9, "less than a minute", id="under-a-minute"),
        pytest.param(60, "1 minute", id="one-minute"),
        pytest.param(119, "1 minute", id="rounded-down"),
        pytest.param(120, "2 minutes", id="two-minutes"),
        pytest.param(3600, "1 hour", id="one-hour"),
        pytest.param(3660, "1 hour 1 minute", id="hour-and-minute"),
        pytest.param(2 * 3600 + 5 * 60, "2 hours 5 minutes", id="hours-and-minutes"),
    ],
)
def test_duration(seconds: float, expected: str) -> None:
    """Durations read as a person says them, never "0 minutes" or "1 minutes"."""
    assert duration(seconds) == expected


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_duration_rejects_bad_input(bad: float) -> None:
    """A negative or non-finite duration is a clear error."""
    with pytest.raises(ValueError, match="finite number of seconds"):
        duration(bad)


def test_idle_report_in_words(clock: FakeClock) -> None:
    """The idle report says "less than a minute" and "1 minute", never "0 minutes" or "1 minutes"."""
    manager = SessionManager(Settings(idle_after_seconds=30, session_timeout_minutes=2), clock=clock)
    manager.create_session("s")
    clock.advance(45)
    report = manager.check_health("s")
    assert report.status == "idle"
    assert report.message.endswith("no activity for less than a minute")
    assert "Without activity it expires in 1 minute." in report.recovery
    clock.advance(40)  # 85 s idle, 35 s left
    report = manager.check_health("s")
    assert report.message.endswith("no activity for 1 minute")
    assert "Without activity it expires in less than a minute." in report.recovery


def test_error_report_counts_in_words(clock: FakeClock) -> None:
    """With one error left before disconnect the report says "1 more error", not "1 more errors"."""
    manager = SessionManager(Settings(max_error_threshold=3), clock=clock)
    manager.create_session("s")
    manager.record_error("s", ValueError("x"))
    assert manager.check_health("s").context.startswith("After 2 more errors in a row")
    manager.record_error("s", ValueError("x"))
    assert manager.check_health("s").context.startswith("After 1 more error in a row")


def test_expiry_context_counts_in_words(clock: FakeClock) -> None:
    """An expired session's context says "after 1 minute" and "after 1 hour", never "1 minutes"."""
    manager = SessionManager(Settings(session_timeout_minutes=1, idle_after_seconds=30), clock=clock)
    manager.create_session("s")
    clock.advance(61)
    assert manager.check_health("s").context == "Sessions expire after 1 minute without activity."
    lasting = SessionManager(
        Settings(absolute_timeout_hours=1, session_timeout_minutes=120, idle_after_seconds=30), clock=clock
    )
    lasting.create_session("t")
    for _ in range(3):
        clock.advance(15 * 60)
        lasting.update_session_activity("t")
    clock.advance(15 * 60 + 1)  # an hour and a second old
    assert lasting.check_health("t").context == "For your security, sessions end after 1 hour."
