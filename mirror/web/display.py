"""Showing attacker-written text to a reviewer: escaped, with hidden characters made
visible, and long values cut with a way to see the rest.

Everything a package author controls (metadata, filenames, member names, finding
evidence, held reasons) goes through :func:`shown` or :func:`long_text` in templates.
Jinja's autoescape already makes markup inert; these also make bidi overrides, zero-width
and control characters visible as ``\\u202e``-style escapes, so a reviewer reads the
bytes the installer will act on, not what a renderer makes of them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask
from markupsafe import Markup, escape

from quarantine.checks.unicode import escaped

INLINE_LIMIT = 300  # characters shown before "show all"
EXPANDED_LIMIT = 64 * 1024  # characters a page embeds at most; beyond: the plain-text view


def shown(text: object, limit: int | None = None) -> Markup:
    """``text`` HTML-escaped, hidden characters as highlighted escapes (newlines kept)."""
    value = "" if text is None else str(text)
    if limit is not None and len(value) > limit:
        value = value[:limit]
    parts = []
    for line in value.split("\n"):
        out = []
        run = []
        for char in line:
            visible = escaped(char)
            if visible == char:
                run.append(char)
                continue
            if run:
                out.append(str(escape("".join(run))))
                run = []
            out.append(f'<span class="esc" title="hidden character">{escape(visible)}</span>')
        if run:
            out.append(str(escape("".join(run))))
        parts.append("".join(out))
    return Markup("\n".join(parts))  # noqa: S704 - every piece above is escaped


def long_text(text: object, limit: int = INLINE_LIMIT, full_url: str | None = None) -> Markup:
    """Short values as they are; longer ones cut at ``limit`` with a ``<details>`` that
    shows up to EXPANDED_LIMIT characters (no script needed), and beyond that a link to
    the full value as plain text."""
    value = "" if text is None else str(text)
    if len(value) <= limit and "\n" not in value[:limit].strip("\n"):
        return shown(value)
    head = shown(value, limit).split("\n")[0]
    more = f"show all {len(value):,} characters"
    body = shown(value, EXPANDED_LIMIT)
    tail = ""
    if len(value) > EXPANDED_LIMIT:
        link = (
            f' <a href="{escape(full_url)}">the whole value as plain text</a>' if full_url else ""
        )
        tail = f'<p class="muted">Cut at {EXPANDED_LIMIT:,} characters.{link}</p>'
    return Markup(  # noqa: S704 - built from escaped parts only
        f'<details class="long"><summary>{head}… <span class="more">{more}</span></summary>'
        f'<pre class="value">{body}</pre>{tail}</details>'
    )


def age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "unknown"
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def size(count: int | None) -> str:
    if count is None:
        return "—"
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def http_link(url: object) -> str | None:
    """The URL when it is a plain http(s) link a reviewer may follow, else None (then
    it is shown as text only: ``javascript:``, ``data:`` and the like never become links)."""
    text = "" if url is None else str(url).strip()
    lowered = text.lower()
    if lowered.startswith(("https://", "http://")) and escaped(text) == text:
        return text
    return None


def install(app: Flask) -> None:
    app.add_template_filter(shown)
    app.add_template_filter(long_text)
    app.add_template_filter(size)
    app.add_template_filter(when)
    app.add_template_global(age)
    app.add_template_global(http_link)
    app.add_template_global(timedelta)
