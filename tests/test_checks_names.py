"""dependency-confusion, typosquat and combosquat: names made to be installed by mistake
are held, and the real neighbours of popular names (plugins, successors, siblings) pass."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from quarantine import CheckContext, Finding, Severity, inspect_file
from quarantine.artifact import Artifact
from quarantine.checks import CATALOGUE, Check
from quarantine.checks.names import (
    COMBOSQUAT,
    DEPENDENCY_CONFUSION,
    TYPOSQUAT,
    combosquat,
    dependency_confusion,
    likeness,
    popular_projects,
    popular_ranks,
    typosquat,
)
from tests.support.builders import make_sdist, make_wheel

NAMES = [
    Check(DEPENDENCY_CONFUSION, dependency_confusion),
    Check(TYPOSQUAT, typosquat),
    Check(COMBOSQUAT, combosquat),
]
HOLDING = {Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM}


def judge(
    directory: Path,
    name: str,
    *,
    project: str | None = None,
    known: frozenset[str] = frozenset(),
    internal: tuple[str, ...] = (),
    sdist: bool = False,
) -> list[Finding]:
    """The names checks' findings for a real wheel (or sdist) of project ``name``."""
    path = (make_sdist if sdist else make_wheel)(directory, name, "1.0")
    context = CheckContext(
        filename=path.name, project=project, known_projects=known, internal_patterns=internal
    )
    return list(inspect_file(path, context, checks=NAMES).findings)


def held(findings: list[Finding]) -> list[Finding]:
    return [finding for finding in findings if finding.severity in HOLDING]


def test_the_names_checks_are_in_the_catalogue():
    ids = [check.id for check in CATALOGUE]
    assert {DEPENDENCY_CONFUSION, TYPOSQUAT, COMBOSQUAT} <= set(ids)


def test_the_popular_list_is_loaded_once_normalized_and_ranked():
    names = popular_projects()
    assert len(names) == 5000 and names[0] == "boto3"
    assert popular_projects() is names  # cached
    assert popular_ranks()["requests"] == names.index("requests") + 1
    assert all(name == name.lower() and "_" not in name and "." not in name for name in names)


# ------------------------------------------------------------------ dependency confusion


@pytest.mark.parametrize(
    ("name", "patterns"),
    [
        ("acme-billing", ("acme-*", "internal-tool")),
        ("Acme_Billing", ("acme-*",)),  # names are normalized before matching
        ("acme.billing", ("ACME_*",)),  # and so are the patterns
        ("internal.tool", ("acme-*", "Internal_Tool")),
    ],
)
def test_an_internal_name_from_upstream_is_critical(tmp_path, name, patterns):
    findings = judge(tmp_path, name, internal=patterns)
    (finding,) = findings  # typosquat and combosquat leave internal names to this check
    assert (finding.check, finding.severity) == (DEPENDENCY_CONFUSION, Severity.CRITICAL)
    assert "internal" in finding.message and "dependency confusion" in finding.message
    assert any(finding.evidence.endswith(f"internal pattern {p}") for p in patterns)


def test_an_internal_sdist_and_the_listed_project_are_caught_too(tmp_path):
    findings = judge(tmp_path, "acme-billing", internal=("acme-*",), sdist=True)
    assert [f.check for f in findings] == [DEPENDENCY_CONFUSION]
    # The listing names an internal project even though the filename does not.
    other = tmp_path / "other"
    other.mkdir()
    findings = judge(other, "billing", project="acme-billing", internal=("acme-*",))
    assert DEPENDENCY_CONFUSION in [f.check for f in findings]


@pytest.mark.parametrize("name", ["acme", "acmebilling", "not-acme-billing", "internal-tools"])
def test_names_outside_the_internal_patterns_pass(tmp_path, name):
    findings = judge(tmp_path, name, internal=("acme-*", "internal-tool"))
    assert DEPENDENCY_CONFUSION not in [f.check for f in findings]


def test_no_internal_patterns_no_dependency_confusion(tmp_path):
    assert judge(tmp_path, "acme-billing") == []


# ------------------------------------------------------------------ typosquats


@pytest.mark.parametrize(
    ("name", "target", "severity", "phrase"),
    [
        # Squats reported in incident write-ups...
        ("reqeusts", "requests", Severity.HIGH, "adjacent letters swapped"),
        ("urlib3", "urllib3", Severity.HIGH, "double letter written once"),
        ("jeIlyfish", "jellyfish", Severity.HIGH, "look-alike"),  # capital I for l
        ("setup-tools", "setuptools", Severity.HIGH, "separators"),
        ("colourama", "colorama", Severity.MEDIUM, "letter added"),
        ("beautifulsup4", "beautifulsoup4", Severity.MEDIUM, "left out"),
        ("tensorfow", "tensorflow", Severity.MEDIUM, "left out"),
        ("diango", "django", Severity.MEDIUM, "keyboard neighbour"),
        ("python3-dateutil", "python-dateutil", Severity.MEDIUM, "version number inside"),
        # ...and the same edits elsewhere.
        ("pilllow", "pillow", Severity.HIGH, "letter doubled"),
        ("pythondateutil", "python-dateutil", Severity.HIGH, "separators"),
        ("b0to3", "boto3", Severity.HIGH, "look-alike"),
        ("websocket-clinet", "websocket-client", Severity.HIGH, "swapped"),
        ("huggingface-hubb", "huggingface-hub", Severity.HIGH, "doubled"),
        ("tenserflow", "tensorflow", Severity.MEDIUM, "letter replaced"),
        ("reqeustss", "requests", Severity.MEDIUM, "two squatting edits"),
    ],
)
def test_a_typo_of_a_popular_name_is_held(tmp_path, name, target, severity, phrase):
    findings = judge(tmp_path, name)
    (finding,) = findings
    assert (finding.check, finding.severity) == (TYPOSQUAT, severity)
    assert f"'{target}'" in finding.message and phrase in finding.message
    assert "download rank" in finding.message
    assert finding.evidence.startswith(f"{name.lower().replace('_', '-')} ~ {target}:")


@pytest.mark.parametrize(
    "name",
    [
        # Plugins and companions of popular projects, popular themselves or not.
        "pytest-cov", "flask-login", "django-environ", "types-requests", "requests-oauthlib",
        "requests-toolbelt", "pytest-forked", "pyarrow-hotfix",
        # Version-suffixed families and their neighbours.
        "boto", "boto3", "botocore", "pyyaml", "urllib3", "httpx2", "progressbar2",
        # Real projects one letter from a popular one, in the ways real names differ:
        # a letter before or after, the first letter, a short word, another word.
        "grequests", "aresponses", "whisperx", "faiss-gpu", "types-boto3-sns", "pytest-csv",
        "crick", "djongo", "clik", "sixx", "attr",
    ],
)  # fmt: skip
def test_real_neighbours_of_popular_names_are_not_held(tmp_path, name):
    assert held(judge(tmp_path, name)) == []


def test_popular_neighbours_are_at_most_info(tmp_path):
    # pyaml and cchardet are popular projects one edit from more popular ones.
    for name, target in [("pyaml", "pyyaml"), ("cchardet", "chardet")]:
        directory = tmp_path / name
        directory.mkdir()
        (finding,) = judge(directory, name)
        assert (finding.check, finding.severity) == (TYPOSQUAT, Severity.INFO)
        assert "itself popular" in finding.message and f"'{target}'" in finding.message
    # The more popular one of a pair says nothing about the other.
    assert judge(tmp_path, "pyyaml") == []


@pytest.mark.parametrize(
    ("name", "target"),
    [("requests2", "requests"), ("httpx2", "httpx"), ("websocket", "websockets")],
)
def test_version_digits_and_plurals_only_warn(tmp_path, name, target):
    (finding,) = judge(tmp_path, name)
    assert (finding.check, finding.severity) == (TYPOSQUAT, Severity.LOW)
    assert f"'{target}'" in finding.message


def test_typos_of_mirrored_and_internal_projects_are_held(tmp_path):
    known = frozenset({"zorblax-client", "zorblax-cleint-extras"})
    (finding,) = judge(tmp_path, "zorblax-cleint", known=known)
    assert (finding.check, finding.severity) == (TYPOSQUAT, Severity.HIGH)
    assert "'zorblax-client', a project this mirror already carries" in finding.message
    # The mirrored project's own files are not a typo of it.
    own, other = tmp_path / "own", tmp_path / "internal"
    own.mkdir()
    other.mkdir()
    assert judge(own, "zorblax-client", known=known) == []
    (finding,) = judge(other, "billling-core", internal=("Billing_Core", "acme-*"))
    assert (finding.check, finding.severity) == (TYPOSQUAT, Severity.HIGH)
    assert "the internal project 'billing-core'" in finding.message


def test_an_unparseable_filename_is_judged_by_its_listing(tmp_path):
    path = make_wheel(tmp_path, "reqeusts", "1.0")
    context = CheckContext(filename="reqeusts.whl", project="reqeusts")
    findings = inspect_file(path, context, checks=NAMES).findings
    assert [(f.check, f.severity) for f in findings] == [(TYPOSQUAT, Severity.HIGH)]


@pytest.mark.parametrize(
    ("name", "target", "edit"),
    [
        ("reqeusts", "requests", "swapped"),
        ("requestss", "requests", "doubled"),
        ("urlib3", "urllib3", "undoubled"),
        ("jeilyfish", "jellyfish", "look-alike"),
        ("setup-tools", "setuptools", "separator"),
        ("flask-bootstrap", "bootstrap-flask", "word-order"),
        ("beautifulsup4", "beautifulsoup4", "omitted"),
        ("colourama", "colorama", "inserted"),
        ("requesys", "requests", "keyboard"),
        ("matplotlip", "matplotlib", "replaced"),
        ("python3-dateutil", "python-dateutil", "version-inside"),
        ("elasticsearch7", "elasticsearch8", "version"),
        ("user-agent", "user-agents", "plural"),
        ("pytest-csv", "pytest-cov", "replaced"),  # graded on the 3-letter word
        ("grequests", "requests", None),  # a letter before the name: a variant
        ("whisperx", "whisper", None),  # a letter after it
        ("rstcheck", "astcheck", None),  # the first letter
        ("pymongo", "pymoo", None),  # two edits, not squatting ones
    ],
)
def test_likeness_names_the_edit(name, target, edit):
    found = likeness(name, target)
    assert (None if found is None else found.edit) == edit


# ------------------------------------------------------------------ combosquats


@pytest.mark.parametrize(
    ("name", "target", "words"),
    [
        ("requests-secure", "requests", "'secure'"),
        ("secure-requests", "requests", "'secure'"),
        ("colorama-update", "colorama", "'update'"),
        ("Requests_Official", "requests", "'official'"),
        ("new-safe-numpy", "numpy", "'new', 'safe'"),
        ("python-dateutil-fixed", "python-dateutil", "'fixed'"),
    ],
)
def test_a_popular_name_plus_squatters_words_is_held(tmp_path, name, target, words):
    (finding,) = judge(tmp_path, name)
    assert (finding.check, finding.severity) == (COMBOSQUAT, Severity.MEDIUM)
    assert f"'{target}'" in finding.message and f"{words} added" in finding.message


def test_a_mirrored_name_plus_squatters_words_is_held(tmp_path):
    (finding,) = judge(tmp_path, "zorblax-client-official", known=frozenset({"zorblax-client"}))
    assert finding.check == COMBOSQUAT
    assert "a project this mirror already carries" in finding.message


@pytest.mark.parametrize(
    "name",
    [
        "requests-secure-auth",  # another word besides
        "flask-security",  # a plugin name real projects use
        "django-upgrade",
        "requests-cache-latest",
        "pytubefix",  # glued on: real names read like that
        "pyarrow-hotfix",  # popular itself
        "py-requests",
    ],
)
def test_plugin_and_variant_names_are_not_combosquats(tmp_path, name):
    assert COMBOSQUAT not in [f.check for f in judge(tmp_path, name)]


# ------------------------------------------------------------------ speed


def test_a_check_call_is_fast_once_the_list_is_loaded(tmp_path):
    path = make_wheel(tmp_path, "reqeusts", "1.0")
    known = frozenset(f"mirrored-project-{n}" for n in range(2000))
    context = CheckContext(filename=path.name, known_projects=known)
    with Artifact.open(path, filename=path.name) as artifact:
        for check in (typosquat, combosquat):
            check(artifact, context)  # load the list and build the indexes
        start = time.perf_counter()
        for _ in range(20):
            for check in (typosquat, combosquat, dependency_confusion):
                check(artifact, context)
        per_call = (time.perf_counter() - start) / 60
    assert per_call < 0.02, f"{per_call * 1000:.1f} ms per check call"
