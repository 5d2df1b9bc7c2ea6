"""url-script-scheme, url-ip-host, url-shortener and url-plain-http: where a release's
own links (Home-page, Download-URL, Project-URL) would take whoever follows them."""

from __future__ import annotations

import pytest

from quarantine import CheckContext, Severity, inspect_file
from quarantine.checks import CATALOGUE, Check
from quarantine.checks.urls import (
    URL_IP_HOST,
    URL_PLAIN_HTTP,
    URL_SCRIPT_SCHEME,
    URL_SHORTENER,
    url_ip_host,
    url_plain_http,
    url_script_scheme,
    url_shortener,
)
from tests.support.builders import make_sdist, make_wheel, metadata_text

CHECKS = [
    Check(URL_SCRIPT_SCHEME, url_script_scheme),
    Check(URL_IP_HOST, url_ip_host),
    Check(URL_SHORTENER, url_shortener),
    Check(URL_PLAIN_HTTP, url_plain_http),
]


def with_links(*lines: str) -> str:
    return metadata_text("demo", "1.0").rstrip("\n") + "\n" + "".join(f"{x}\n" for x in lines)


def graded(path) -> set[tuple[str, Severity]]:
    inspection = inspect_file(path, CheckContext(filename=path.name), checks=CHECKS)
    return {(f.check, f.severity) for f in inspection.findings}


def links(tmp_path, *lines: str) -> set[tuple[str, Severity]]:
    return graded(make_wheel(tmp_path, "demo", "1.0", metadata=with_links(*lines)))


HIGH_SCRIPT = {(URL_SCRIPT_SCHEME, Severity.HIGH)}
IP = {(URL_IP_HOST, Severity.MEDIUM)}
SHORT = {(URL_SHORTENER, Severity.MEDIUM)}
HTTP = {(URL_PLAIN_HTTP, Severity.LOW)}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Home-page: javascript:alert(document.cookie)", HIGH_SCRIPT),
        ("Home-page:  JaVa\tScRiPt:alert(1)", HIGH_SCRIPT),  # as browsers read it
        ("Project-URL: Docs, data:text/html;base64,PHNjcmlwdD4=", HIGH_SCRIPT),
        ("Download-URL: vbscript:msgbox(1)", HIGH_SCRIPT),
        ("Download-URL: https://203.0.113.7/demo-1.0.tar.gz", IP),
        ("Project-URL: Source, https://[2001:db8::1]:8443/demo", IP),
        ("Home-page: https://3405803783/", IP),  # 203.0.113.7 as one decimal number
        ("Home-page: https://0x7f.1/", IP),
        ("Home-page: https://0177.0.0.1./", IP),
        ("Home-page: https://bit.ly/3xYzAbC", SHORT),
        ("Project-URL: Homepage, https://www.tinyurl.com/demo", SHORT),
        (
            "Project-URL: Homepage, https://\uff22\uff29\uff34\uff0e\uff4c\uff59/x",
            SHORT,
        ),  # fullwidth
        ("Home-page: http://github.com/demo/demo", HTTP),
        ("Home-page: http://198.51.100.2/", IP | HTTP),
        ("Download-URL: http://t.co/abc", SHORT | HTTP),
    ],
)
def test_risky_links_are_graded(tmp_path, line, expected):
    assert links(tmp_path, line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "Home-page: https://github.com/pallets/flask/",
        "Project-URL: Documentation, https://docs.python.org/3.11/library/",
        "Project-URL: Changes, https://aka.ms/azsdk/python/changelog",  # single-owner
        "Project-URL: Source, https://git.io/JfZ3q",  # GitHub's own shortener
        "Project-URL: Tracker, https://notbit.ly/x",
        "Project-URL: Mirror, https://example.com:8080/1.2.3.4",
        "Project-URL: Chat, https://1password.com/",
        "Project-URL: Mail, mailto:dev@example.org",
        "Project-URL: Repo, git+https://github.com/demo/demo.git",
        "Download-URL: UNKNOWN",
        "Home-page: https://[not an ip",
    ],
)
def test_ordinary_links_pass(tmp_path, line):
    assert links(tmp_path, line) == set()


def test_one_finding_lists_every_matching_link(tmp_path):
    path = make_wheel(
        tmp_path,
        "demo",
        "1.0",
        metadata=with_links(
            "Home-page: http://demo.example.org",
            "Project-URL: Docs, http://demo.readthedocs.io",
            "Project-URL: Source, https://github.com/demo/demo",
        ),
    )
    inspection = inspect_file(path, CheckContext(filename=path.name), checks=CHECKS)
    (finding,) = inspection.findings
    assert finding.message.startswith("2 project links over plain http")
    assert finding.evidence == (
        "Home-page: 'http://demo.example.org'; Project-URL 'Docs': 'http://demo.readthedocs.io'"
    )
    assert finding.path == "demo-1.0.dist-info/METADATA"


def test_sdist_links_are_checked(tmp_path):
    text = with_links("Home-page: javascript:alert(1)")
    assert graded(make_sdist(tmp_path, "demo", "1.0", metadata=text)) == HIGH_SCRIPT


def test_real_http_homepages_only_warn(corpus):
    # six and others link over plain http, as 54 of 966 real benchmark wheels do
    for path in corpus.iterdir():
        assert all(severity is Severity.LOW for _, severity in graded(path)), path.name


def test_url_checks_are_in_the_catalogue():
    assert {check.id for check in CHECKS} <= {check.id for check in CATALOGUE}
