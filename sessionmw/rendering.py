"""The layout of the words: a user-facing text as plain text, Markdown, HTML or a JSON-ready dict.

The last of three steps (:mod:`sessionmw.translation` picks the situation, :mod:`sessionmw.texts`
holds its words). :func:`format_error` renders a :class:`~sessionmw.UserFacingError`;
:func:`recovery_text` a health report as the seed's three-part guidance (what happened, how to fix
it, context), which the CLI prints. Every format escapes what it shows; ``detail`` (type, text,
traceback) appears only for an error built in debug mode.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

from sessionmw.texts import HOW_TO_FIX, WHAT_HAPPENED, fill, local
from sessionmw.translation import UserFacingError

if TYPE_CHECKING:
    from sessionmw.health import HealthReport

# The door's names defined here (format_error) are imported from sessionmw.
__all__ = ["Wording", "guidance", "recovery_text"]


class Wording(Protocol):
    """What every user-facing text has: a :class:`~sessionmw.UserFacingError`, a
    :class:`~sessionmw.HealthReport`, a :class:`~sessionmw.translation.Statement`."""

    @property
    def message(self) -> str: ...
    @property
    def recovery(self) -> Sequence[str]: ...
    @property
    def context(self) -> str: ...


def guidance(said: Wording) -> list[str]:
    """The seed's three-part guidance, line by line: what happened, how to fix it (numbered
    steps), context."""
    lines = [fill(local(WHAT_HAPPENED), {"message": said.message})]
    if said.recovery:
        lines.append(local(HOW_TO_FIX))
        lines += [f"  {number}. {step}" for number, step in enumerate(said.recovery, 1)]
    if said.context:
        lines.append(f"📝 {said.context}")
    return lines


def recovery_text(health: HealthReport) -> str:
    """The report as the seed's three-part guidance: what happened, how to fix it, context."""
    return "\n".join(guidance(health))


@overload
def format_error(err: UserFacingError, fmt: Literal["text", "markdown", "html"] = "text") -> str: ...
@overload
def format_error(err: UserFacingError, fmt: Literal["dict"]) -> dict[str, Any]: ...
def format_error(
    err: UserFacingError, fmt: Literal["text", "markdown", "html", "dict"] = "text"
) -> str | dict[str, Any]:
    """Render ``err`` for display: ``"text"``, ``"markdown"``, ``"html"`` (escaped) or ``"dict"``.

    The dict is JSON-serialisable, with keys ``title message recovery severity transient status
    context retry_after`` (and ``detail`` in debug mode).
    """
    if not isinstance(err, UserFacingError):
        raise TypeError(f"format_error needs a UserFacingError (see translate()), not {type(err).__name__}")
    if fmt == "text":
        return _text(err)
    if fmt == "markdown":
        return _markdown(err)
    if fmt == "html":
        return _html(err)
    if fmt == "dict":
        data: dict[str, Any] = {
            "title": err.title,
            "message": err.message,
            "recovery": list(err.recovery),
            "severity": err.severity,
            "transient": err.transient,
            "status": err.status,
            "context": err.context,
            "retry_after": err.retry_after,
        }
        if err.detail:
            data["detail"] = err.detail
        return data
    raise ValueError(f"unknown format {fmt!r}: use 'text', 'markdown', 'html' or 'dict'")


def _text(err: UserFacingError) -> str:
    lines = [err.title, *guidance(err)]
    if err.detail:
        lines += ["", err.detail]
    return "\n".join(lines)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")
_MARKDOWN_LINE_START = re.compile(r"^(\s*(?:\d+)?)([-+.)])", re.MULTILINE)


def _md(text: str) -> str:
    """``text`` with Markdown's special characters escaped, so it renders literally."""
    return _MARKDOWN_LINE_START.sub(r"\1\\\2", _MARKDOWN_SPECIAL.sub(r"\\\1", text))


def _markdown(err: UserFacingError) -> str:
    parts = [f"**{_md(err.title)}**", _md(err.message)]
    if err.recovery:
        parts.append("\n".join(f"{number}. {_md(step)}" for number, step in enumerate(err.recovery, 1)))
    if err.context:
        parts.append(f"*{_md(err.context)}*")
    if err.detail:
        longest = max((len(run) for run in re.findall(r"`+", err.detail)), default=0)
        fence = "`" * max(3, longest + 1)
        parts.append(f"{fence}text\n{err.detail}\n{fence}")
    return "\n\n".join(parts)


def _html(err: UserFacingError) -> str:
    def esc(text: str) -> str:
        return html.escape(text, quote=True)

    parts = [
        # "sessionmw-error" once: the severity class is added only when it says something else.
        f'<div class="sessionmw-error{"" if err.severity == "error" else " sessionmw-" + esc(err.severity)}"'
        ' role="alert">',
        f'<p class="sessionmw-error-title"><strong>{esc(err.title)}</strong></p>',
        f'<p class="sessionmw-error-message">{esc(err.message)}</p>',
    ]
    if err.recovery:
        steps = "".join(f"<li>{esc(step)}</li>" for step in err.recovery)
        parts.append(f'<ol class="sessionmw-error-recovery">{steps}</ol>')
    if err.context:
        parts.append(f'<p class="sessionmw-error-context">{esc(err.context)}</p>')
    if err.detail:
        parts.append(f'<pre class="sessionmw-error-detail">{esc(err.detail)}</pre>')
    parts.append("</div>")
    return "".join(parts)
