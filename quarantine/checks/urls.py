"""The links a release gives about itself (Home-page, Download-URL, Project-URL): where
they would take a reviewer or user who follows them.

Index pages and the admin review page show these links; nothing in the mirror follows
them. A ``javascript:`` or ``data:`` link runs in the browser of whoever clicks it; a
bare IP address or a URL shortener hides where a link goes; plain ``http://`` can be
rewritten on the way, but so many real releases still link that way (69 of the 2,845
links in the benchmark's 966 real wheels) that it only warns.
"""

from __future__ import annotations

import ipaddress
import string
import unicodedata
from collections.abc import Callable, Iterator
from typing import Final
from urllib.parse import urlsplit

from quarantine.artifact import Artifact
from quarantine.checks.unicode import visible
from quarantine.findings import CheckContext, Finding, Severity

URL_SCRIPT_SCHEME: Final = "url-script-scheme"
URL_IP_HOST: Final = "url-ip-host"
URL_SHORTENER: Final = "url-shortener"
URL_PLAIN_HTTP: Final = "url-plain-http"

MAX_EVIDENCE: Final = 500

# Schemes whose "link" is content a browser runs or renders in place.
SCRIPT_SCHEMES: Final = frozenset({"javascript", "vbscript", "data"})
# Services that redirect anywhere their users choose: the link says nothing about its
# destination. Single-owner shorteners that only point at their owner's own sites
# (aka.ms for Microsoft, git.io for GitHub, youtu.be) are not listed: real releases use
# them and their destination is known.
URL_SHORTENERS: Final = frozenset(
    {
        "adf.ly",
        "bit.do",
        "bit.ly",
        "bitly.com",
        "bl.ink",
        "buff.ly",
        "clck.ru",
        "cutt.ly",
        "goo.gl",
        "is.gd",
        "lnkd.in",
        "ow.ly",
        "rb.gy",
        "rebrand.ly",
        "s.id",
        "shorturl.at",
        "t.co",
        "t.ly",
        "tiny.cc",
        "tinyurl.com",
        "u.to",
        "v.gd",
        "x.co",
    }
)

# What WHATWG URL parsing (what browsers do) strips before reading a URL: leading and
# trailing C0 controls and spaces, and every tab and newline (``java\tscript:``).
_C0_AND_SPACE: Final = "".join(chr(c) for c in range(0x21))
_REMOVED: Final = str.maketrans("", "", "\t\n\r")


def url_script_scheme(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A project link with a ``javascript:``, ``vbscript:`` or ``data:`` scheme: a page
    that shows the link runs or renders attacker content when it is clicked. High."""
    return _report(
        artifact,
        URL_SCRIPT_SCHEME,
        Severity.HIGH,
        lambda scheme, host: scheme in SCRIPT_SCHEMES,
        "with a script scheme: a click runs or renders attacker content in the browser",
    )


def url_ip_host(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A project link to a bare IP address (IPv4 in any notation browsers accept, or
    IPv6) instead of a domain name: nothing says whose server it is. Medium."""
    return _report(
        artifact,
        URL_IP_HOST,
        Severity.MEDIUM,
        lambda scheme, host: host is not None and _is_ip(host),
        "to a bare IP address: nothing says whose server it is",
    )


def url_shortener(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A project link through a URL shortener (bit.ly, tinyurl.com, t.co, is.gd, ...:
    URL_SHORTENERS), which hides where it leads and can be re-pointed at any time.
    Medium."""
    return _report(
        artifact,
        URL_SHORTENER,
        Severity.MEDIUM,
        lambda scheme, host: host is not None and _is_shortener(host),
        "through a URL shortener, which hides and can change where it leads",
    )


def url_plain_http(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A project link over plain ``http://``, which anyone on the way can rewrite. Low:
    many real, old and well-kept projects still link that way."""
    return _report(
        artifact,
        URL_PLAIN_HTTP,
        Severity.LOW,
        lambda scheme, host: scheme == "http",
        "over plain http, which anyone on the way can rewrite",
    )


def _links(artifact: Artifact) -> Iterator[tuple[str, str]]:
    """(field, URL) for every link in the core metadata."""
    core = artifact.core_metadata
    if core is None:
        return
    for field, header in (("home_page", "Home-page"), ("download_url", "Download-URL")):
        value = core.raw.get(field)
        if isinstance(value, str) and value.strip():
            yield header, value
    for label, url in (core.raw.get("project_urls") or {}).items():
        yield f"Project-URL {visible(label)}", url


def _parts(url: str) -> tuple[str, str | None] | None:
    """(scheme, host) as a browser reads ``url``: scheme lower-cased, host lower-cased
    and NFKC-normalized without a trailing dot; None when it cannot be parsed."""
    cleaned = url.strip(_C0_AND_SPACE).translate(_REMOVED)
    try:
        split = urlsplit(cleaned)
        host = split.hostname
    except ValueError:
        return None
    if host is not None:
        host = unicodedata.normalize("NFKC", host).replace("\u3002", ".").lower().rstrip(".")
    return split.scheme, host or None


def _is_ip(host: str) -> bool:
    """An IP literal, or what browsers read as IPv4: a host whose last label is a number
    (decimal, ``0x`` hex or octal: ``2130706433``, ``0x7f.1``, ``0177.0.0.1``)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    last = host.rsplit(".", 1)[-1]
    if last.startswith(("0x", "0X")):
        return all(c in string.hexdigits for c in last[2:])
    return last.isascii() and last.isdigit()


def _is_shortener(host: str) -> bool:
    labels = host.split(".")
    return any(".".join(labels[i:]) in URL_SHORTENERS for i in range(len(labels)))


def _report(
    artifact: Artifact,
    check: str,
    severity: Severity,
    matches: Callable[[str, str | None], bool],
    says: str,
) -> list[Finding]:
    """One finding listing every link of this file that ``matches`` (scheme, host)."""
    found = []
    for field, url in _links(artifact):
        parts = _parts(url)
        if parts is not None and matches(*parts):
            found.append(f"{field}: {visible(url)}")
    if not found:
        return []
    core = artifact.core_metadata
    plural = "s" if len(found) > 1 else ""
    return [
        Finding(
            check,
            severity,
            f"{len(found)} project link{plural} {says}.",
            _clip("; ".join(found)),
            None if core is None else core.path,
        )
    ]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EVIDENCE else text[: MAX_EVIDENCE - 1] + "…"
