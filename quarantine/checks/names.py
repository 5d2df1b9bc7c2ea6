"""The project's name: one of ours served from upstream (dependency confusion), or made
to be mistaken for a popular or already-mirrored project (typosquatting, combosquatting).

Name likeness alone is noisy (published typosquat detectors run at 28-80% false
positives), so it is graded by how a name is made, as measured on real names: of the
~10,000 PyPI projects ranked 5,001-15,000 by downloads (established, and not in the
popular list), 18% are within Damerau-Levenshtein distance 2 of a popular name, mostly
short names and families (``faiss-gpu``/``faiss-cpu``, ``types-boto3-sns``/``-sqs``,
``grequests``/``requests``). The edits typosquats are made of and real names seldom are
hold the file; ordinary one-letter typos hold only in long words (or shorter words of
the most popular names); version digits, plurals and reordered words only warn. With
these rules 0.34% of those real names are held, and a project in the popular list never
is: its neighbours there are real projects too (``pytest``/``pytest-cov``, ``boto``/``boto3``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Final

from packaging.utils import NormalizedName, canonicalize_name
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

from quarantine.artifact import Artifact, safe_text
from quarantine.findings import CheckContext, Finding, Severity

DIGITS: Final = "0123456789"

DEPENDENCY_CONFUSION: Final = "dependency-confusion"
TYPOSQUAT: Final = "typosquat"
COMBOSQUAT: Final = "combosquat"

# Damerau-Levenshtein distance searched (on PEP 503 names and on names with the
# separators removed). Distance 2 counts only as two squatting edits on a long word: as
# any two edits it matches 4% of the real names above and almost no squat.
MAX_DISTANCE: Final = 2
# Squatting edits (swapped, doubled, undoubled, look-alike letters; separators) count on
# names of at least this many letters (separators aside); shorter names are all neighbours.
STRONG_MIN_LENGTH: Final = 5
# Ordinary typos (a letter left out, added or replaced; two squatting edits) count on a
# word of at least this many letters: the one ``-`` word that differs when the names
# share the others (``faiss-gpu``/``faiss-cpu`` is another word, not a typo), else the
# whole name. Squatters aim at the most downloaded projects, so for the TOP_TARGETS most
# popular a letter left out, added or hit beside its key counts in a shorter word
# (``diango``/``django``); a letter replaced there is as often another real name
# (``djongo``, ``pylink``/``pylint``).
TYPO_MIN_LENGTH: Final = 8
TOP_TARGETS: Final = 1000
TOP_TYPO_MIN_LENGTH: Final = 6
# Version digits, plurals and reordered words (warn only) count on names this long. A
# version digit inside one of the TOP_VERSION_TARGETS most popular names (not at its end,
# where successors put it: ``httpx2``) holds: no real name of those 10,000 does that, a
# famous squat did (``python3-dateutil``).
FAMILY_MIN_LENGTH: Final = 5
TOP_VERSION_TARGETS: Final = 50
COMBO_MIN_LENGTH: Final = 3  # letters in the project a combosquat embeds
MAX_FINDINGS: Final = 3  # per check: the closest, most popular look-alikes

# Words that squatters attach to a popular name to make a copy look trustworthy or newer
# (``requests-secure``, ``secure-requests``, ``colorama-update``). None of them sits next
# to a popular name in the ~10,000 real names above; words that do, as legitimate plugin
# and variant names, are left out: security, upgrade, latest, lite, plus, pro, stable,
# patch, core, tools, utils, client, py, python.
SUSPICIOUS_WORDS: Final = frozenset(
    {
        "secure", "safe", "safer", "fixed", "fix", "hotfix", "patched", "official",
        "update", "updated", "updater", "new", "real", "original", "legit", "verified",
        "trusted", "free", "premium", "fork", "forked", "modified", "mod", "cracked", "hack",
    }
)  # fmt: skip

# Characters that read alike in a name (after lowercasing: ``jeIlyfish`` -> jeilyfish).
LOOK_ALIKES: Final = ("li1", "o0", "sz5", "uv", "mn", "e3", "a4", "b6", "g9q")
KEYBOARD_ROWS: Final = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")

# How one name was made from another; each names the phrase a reviewer reads.
SEPARATOR: Final = "separator"
WORD_ORDER: Final = "word-order"
SWAPPED: Final = "swapped"
DOUBLED: Final = "doubled"
UNDOUBLED: Final = "undoubled"
LOOK_ALIKE: Final = "look-alike"
OMITTED: Final = "omitted"
INSERTED: Final = "inserted"
KEYBOARD: Final = "keyboard"
REPLACED: Final = "replaced"
TWO_EDITS: Final = "two-edits"
VERSION: Final = "version"
VERSION_INSIDE: Final = "version-inside"
PLURAL: Final = "plural"

EDIT_PHRASES: Final = {
    SEPARATOR: "the same letters with different separators",
    WORD_ORDER: "the same words in another order",
    SWAPPED: "two adjacent letters swapped",
    DOUBLED: "a letter doubled",
    UNDOUBLED: "a double letter written once",
    LOOK_ALIKE: "a letter replaced by a look-alike",
    OMITTED: "a letter left out",
    INSERTED: "a letter added",
    KEYBOARD: "a letter replaced by its keyboard neighbour",
    REPLACED: "a letter replaced",
    TWO_EDITS: "two squatting edits",
    VERSION: "a different version number",
    VERSION_INSIDE: "a version number inside the name",
    PLURAL: "a plural 's' added or dropped",
}
# Squatting edits, which real neighbouring names seldom show (17 of the ~10,000, 12 of
# them separator variants such as ``git-python``/``gitpython``).
STRONG_EDITS: Final = frozenset({SEPARATOR, SWAPPED, DOUBLED, UNDOUBLED, LOOK_ALIKE})
# Ordinary typos: squats and real names alike show them, so only long words count.
TYPO_EDITS: Final = frozenset({OMITTED, INSERTED, KEYBOARD, REPLACED, TWO_EDITS})
# The typos that also count in shorter words of the TOP_TARGETS.
TOP_TYPO_EDITS: Final = frozenset({OMITTED, INSERTED, KEYBOARD})
# How real projects name their successors and siblings (``boto``/``boto3``, ``httpx2``,
# ``python3-ldap``; ``websocket``/``websockets``; ``flask-bootstrap``/``bootstrap-flask``):
# shown, never held.
FAMILY_EDITS: Final = frozenset({VERSION, VERSION_INSIDE, PLURAL, WORD_ORDER})


# ------------------------------------------------------------------ the names compared


@cache
def popular_projects() -> tuple[NormalizedName, ...]:
    """The popular list shipped as package data (``data/popular.txt``), normalized,
    most downloaded first; read once."""
    text = resources.files("quarantine").joinpath("data/popular.txt").read_text("utf-8")
    lines = (line.strip() for line in text.splitlines())
    names = (canonicalize_name(line) for line in lines if line and not line.startswith("#"))
    return tuple(dict.fromkeys(names))


@cache
def popular_ranks() -> dict[str, int]:
    """Each popular project's download rank (1 is the most downloaded)."""
    return {name: rank for rank, name in enumerate(popular_projects(), 1)}


def _squash(name: str) -> str:
    return name.replace("-", "")


def _word_key(name: str) -> tuple[str, ...]:
    return tuple(sorted(name.split("-")))


@dataclass(frozen=True)
class _Index:
    """Names prepared for fast look-alike search: as given, without separators, by words
    in any order, and by their form without separators."""

    names: tuple[str, ...]
    squashed: tuple[str, ...]
    by_squashed: dict[str, tuple[str, ...]]
    by_words: dict[tuple[str, ...], tuple[str, ...]]

    @classmethod
    def of(cls, names: Iterable[str]) -> _Index:
        ordered = tuple(dict.fromkeys(names))
        by_squashed: dict[str, list[str]] = {}
        by_words: dict[tuple[str, ...], list[str]] = {}
        for name in ordered:
            by_squashed.setdefault(_squash(name), []).append(name)
            if "-" in name:
                by_words.setdefault(_word_key(name), []).append(name)
        return cls(
            ordered,
            tuple(_squash(name) for name in ordered),
            {key: tuple(value) for key, value in by_squashed.items()},
            {key: tuple(value) for key, value in by_words.items()},
        )

    def near(self, name: str) -> set[str]:
        """Names within MAX_DISTANCE of ``name``, as given or without separators, and
        names of the same words in another order."""
        found: set[str] = set()
        for choices, query in ((self.names, name), (self.squashed, _squash(name))):
            matches = process.extract(
                query,
                choices,
                scorer=DamerauLevenshtein.distance,
                score_cutoff=MAX_DISTANCE,
                limit=None,
            )
            found.update(self.names[at] for _, _, at in matches)
        if "-" in name:
            found.update(self.by_words.get(_word_key(name), ()))
        found.discard(name)
        return found


@cache
def _popular_index() -> _Index:
    return _Index.of(popular_projects())


@lru_cache(maxsize=8)
def _index_of(names: frozenset[str]) -> _Index:
    normalized = {canonicalize_name(name) for name in names} - popular_ranks().keys()
    return _Index.of(sorted(normalized))


def _indexes(context: CheckContext) -> list[_Index]:
    """The popular names, then the mirrored and internal ones (when there are any)."""
    others = context.known_projects | _internal_names(context)
    return [_popular_index(), _index_of(others)] if others else [_popular_index()]


# ------------------------------------------------------------------ how a name was made


def _look_alike(x: str, y: str) -> bool:
    return any(x in group and y in group for group in LOOK_ALIKES)


_KEY_POSITIONS: Final = {
    key: (row, at) for row, keys in enumerate(KEYBOARD_ROWS) for at, key in enumerate(keys)
}


def _keyboard_neighbours(x: str, y: str) -> bool:
    if x not in _KEY_POSITIONS or y not in _KEY_POSITIONS:
        return False
    (row_x, at_x), (row_y, at_y) = _KEY_POSITIONS[x], _KEY_POSITIONS[y]
    return abs(row_x - row_y) <= 1 and abs(at_x - at_y) <= 1


def _added(longer: str, shorter: str, *, double: str, single: str) -> str | None:
    """The kind of edit that adds one character to ``shorter`` to give ``longer``:
    ``double`` when it repeats a neighbour, ``single`` inside the name, a version digit,
    a plural ``s``; None for a letter before or after the name, as real projects name
    their variants (``aresponses``, ``grequests``; ``whisperx``, ``pulumi-awsx``)."""
    for at, char in enumerate(longer):
        if longer[:at] + longer[at + 1 :] != shorter:
            continue
        if char in longer[max(at - 1, 0) : at] + longer[at + 1 : at + 2]:
            return double
        if char.isdigit():
            return VERSION  # boto3, python3-ldap, pyqt6-webengine
        if at == len(longer) - 1:
            return PLURAL if char == "s" else None
        return None if at == 0 else single
    return None


def _one_edit(name: str, target: str) -> str | None:
    """How ``name`` is one edit away from ``target`` (an edit kind), or None when it is
    not, or when the edit is how real projects name variants (a letter before or after
    the name, the first letter changed)."""
    if len(name) == len(target) + 1:
        return _added(name, target, double=DOUBLED, single=INSERTED)
    if len(name) + 1 == len(target):
        return _added(target, name, double=UNDOUBLED, single=OMITTED)
    if len(name) != len(target):
        return None
    differ = [at for at, (x, y) in enumerate(zip(name, target, strict=True)) if x != y]
    if len(differ) == 2 and differ[1] == differ[0] + 1:
        first, second = differ
        if name[first] == target[second] and name[second] == target[first]:
            return SWAPPED
        return None
    if len(differ) != 1:
        return None
    (at,) = differ
    x, y = name[at], target[at]
    if _look_alike(x, y):
        return LOOK_ALIKE
    if x.isdigit() or y.isdigit():
        return VERSION  # elasticsearch7/8, entrypoint2/entrypoints
    if at == 0:
        return None
    return KEYBOARD if _keyboard_neighbours(x, y) else REPLACED


def _strong_variants(word: str) -> Iterator[str]:
    """Every string one STRONG edit away from ``word``."""
    for at, char in enumerate(word):
        yield word[: at + 1] + char + word[at + 1 :]  # doubled
        if at + 1 < len(word):
            following = word[at + 1]
            if following == char:
                yield word[:at] + word[at + 1 :]  # undoubled
            else:
                yield word[:at] + following + char + word[at + 2 :]  # swapped
        for group in LOOK_ALIKES:
            if char in group:
                for other in group.replace(char, ""):
                    yield word[:at] + other + word[at + 1 :]


def _two_strong_edits(name: str, target: str) -> bool:
    return any(_one_edit(name, step) in STRONG_EDITS for step in _strong_variants(target))


@dataclass(frozen=True, slots=True)
class Likeness:
    """How ``name`` is made from ``target``: the kind of edit, its Damerau-Levenshtein
    distance, the length of the word it falls in (a one-letter edit in ``gpu`` makes
    another word; in ``requests``, a typo) and of the target without separators."""

    target: str
    edit: str
    distance: int
    word_length: int
    name_length: int


def likeness(name: str, target: str) -> Likeness | None:
    """How ``name`` is made from ``target`` (both PEP 503 normalized), if it is made by a
    squatting edit, a typo, or a family edit; None for names merely close in spelling."""
    if name == target:
        return None
    squashed = len(_squash(target))
    if _squash(name) == _squash(target):
        return Likeness(target, SEPARATOR, 0, squashed, squashed)
    if "-" in name and _word_key(name) == _word_key(target):
        return Likeness(target, WORD_ORDER, 0, squashed, squashed)
    words, target_words = name.split("-"), target.split("-")
    # The one word an edit falls in, when the names have the same words otherwise.
    differ = [(a, b) for a, b in zip(words, target_words, strict=False) if a != b]
    if len(words) == len(target_words) and len(differ) == 1:
        edited, original = differ[0]
    else:
        edited, original = _squash(name), _squash(target)
    distance = DamerauLevenshtein.distance(edited, original, score_cutoff=MAX_DISTANCE)
    if distance == 1:
        edit = _one_edit(edited, original)
        if edit == VERSION and _squash(name).rstrip(DIGITS) != _squash(target).rstrip(DIGITS):
            edit = VERSION_INSIDE
    elif distance == 2 and _two_strong_edits(edited, original):
        edit = TWO_EDITS
    else:
        return None
    return None if edit is None else Likeness(target, edit, distance, len(original), squashed)


def _grade(found: Likeness) -> Severity | None:
    """The severity for a name that is not itself popular, or None when the likeness
    is one real names show too often to mean anything."""
    if found.edit in STRONG_EDITS and found.name_length >= STRONG_MIN_LENGTH:
        return Severity.HIGH
    if found.edit in TYPO_EDITS and found.word_length >= TYPO_MIN_LENGTH:
        return Severity.MEDIUM
    rank = popular_ranks().get(found.target, TOP_TARGETS + 1)
    if (
        found.edit in TOP_TYPO_EDITS
        and found.word_length >= TOP_TYPO_MIN_LENGTH
        and rank <= TOP_TARGETS
    ):
        return Severity.MEDIUM
    if found.edit in FAMILY_EDITS and found.name_length >= FAMILY_MIN_LENGTH:
        if found.edit == VERSION_INSIDE and rank <= TOP_VERSION_TARGETS:
            return Severity.MEDIUM
        return Severity.LOW
    return None


# ------------------------------------------------------------------ the checks


def _project_name(artifact: Artifact, context: CheckContext) -> NormalizedName | None:
    if artifact.name is not None:
        return artifact.name
    return None if context.project is None else canonicalize_name(context.project)


def _internal_pattern(name: str, patterns: Iterable[str]) -> str | None:
    """The first internal pattern (a name or glob, normalized as names are) ``name`` matches."""
    for pattern in patterns:
        if fnmatch.fnmatchcase(name, canonicalize_name(pattern.strip())):
            return pattern
    return None


def _internal_names(context: CheckContext) -> frozenset[str]:
    """The internal patterns that are plain names: squat targets like mirrored projects."""
    return frozenset(
        canonicalize_name(pattern.strip())
        for pattern in context.internal_patterns
        if pattern.strip() and not any(char in pattern for char in "*?[")
    )


def dependency_confusion(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """The project name (from the filename, or the project it was listed under) matches
    a configured internal name or glob (``[policy] internal = ["acme-*"]``): a public
    file under one of our names is how dependency confusion gets installed."""
    names = {_project_name(artifact, context)}
    if context.project is not None:
        names.add(canonicalize_name(context.project))
    findings = []
    for name in sorted(name for name in names if name is not None):
        pattern = _internal_pattern(name, context.internal_patterns)
        if pattern is None:
            continue
        findings.append(
            Finding(
                DEPENDENCY_CONFUSION,
                Severity.CRITICAL,
                f"The project name {safe_text(name)!r} matches the internal name pattern "
                f"{safe_text(pattern)!r}, so this public file would stand in for an internal "
                "package (dependency confusion).",
                safe_text(f"{name} matches internal pattern {pattern}"),
            )
        )
    return findings


def _describe(target: str, context: CheckContext) -> str:
    rank = popular_ranks().get(target)
    if rank is not None:
        return f"the popular project {target!r} (download rank {rank})"
    if target in _internal_names(context):
        return f"the internal project {safe_text(target)!r}"
    return f"{safe_text(target)!r}, a project this mirror already carries"


def _order(target: str) -> tuple[int, str]:
    """Popular targets first, most downloaded first."""
    return popular_ranks().get(target, len(popular_ranks()) + 1), target


def typosquat(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """The project name is a typo of a popular project's, of one the mirror already
    carries, or of an internal one (Damerau-Levenshtein distance <= 2 after PEP 503
    normalization, also compared with separators removed), without being that project.

    Graded by the edit. High: a squatting edit (adjacent letters swapped, a letter
    doubled or undoubled, a look-alike letter, separators moved) on a name of
    STRONG_MIN_LENGTH letters. Medium: an ordinary typo (a letter left out, added or
    replaced; two squatting edits) in a word of TYPO_MIN_LENGTH letters, or of
    TOP_TYPO_MIN_LENGTH for a letter left out, added or hit beside its key in one of the
    TOP_TARGETS most popular names; a version digit inside one of the TOP_VERSION_TARGETS.
    Low: other version digits, a plural ``s``, reordered words. A name in the popular
    list is only ever info, when it resembles a more popular one: both are established."""
    name = _project_name(artifact, context)
    if name is None or _internal_pattern(name, context.internal_patterns) is not None:
        return []  # dependency-confusion reports internal names
    own_rank = popular_ranks().get(name)
    graded: list[tuple[Severity, Likeness]] = []
    near: set[str] = set()
    for index in _indexes(context):
        near |= index.near(name)
    for target in sorted(near, key=_order):
        found = likeness(name, target)
        if found is None:
            continue
        severity = _grade(found)
        if severity is None:
            continue
        if own_rank is not None:
            target_rank = popular_ranks().get(target)
            if severity is Severity.LOW or target_rank is None or target_rank > own_rank:
                continue  # a popular name beside a less popular one, or a family member
            severity = Severity.INFO
        graded.append((severity, found))
    graded.sort(key=lambda pair: -pair[0].rank)  # stable: by rank within a severity
    return [_typo_finding(name, severity, found, context) for severity, found in graded][
        :MAX_FINDINGS
    ]


def _typo_finding(name: str, severity: Severity, found: Likeness, context: CheckContext) -> Finding:
    phrase = EDIT_PHRASES[found.edit]
    evidence = f"{name} ~ {found.target}: {found.edit}, distance {found.distance}"
    if severity is Severity.INFO:
        message = (
            f"The name {safe_text(name)!r}, itself popular (download rank "
            f"{popular_ranks()[name]}), resembles {_describe(found.target, context)}: "
            f"{phrase}; both are established, so likely neighbours rather than a squat."
        )
    elif severity is Severity.LOW:
        message = (
            f"The name {safe_text(name)!r} is {_describe(found.target, context)} with "
            f"{phrase}, as real successors and siblings are named, and as squats can be."
        )
    else:
        distance = f" (Damerau-Levenshtein distance {found.distance})" if found.distance else ""
        message = (
            f"The name {safe_text(name)!r} looks like a typo of "
            f"{_describe(found.target, context)}: {phrase}{distance}."
        )
    return Finding(TYPOSQUAT, severity, message, safe_text(evidence))


def _combos(name: str, index: _Index) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(embedded name, added words) for each way ``name`` is a name of ``index`` (its
    separators aside) plus only SUSPICIOUS_WORDS, as words before or after it. Words glued
    on without a separator are not looked for: real names read that way too often
    (``pytubefix``, ``schedulefree``, ``newtools``)."""
    words = name.split("-")
    for cut in range(1, len(words)):
        head, tail = "-".join(words[:cut]), "-".join(words[cut:])
        if set(words[cut:]) <= SUSPICIOUS_WORDS:
            for target in index.by_squashed.get(_squash(head), ()):
                yield target, tuple(words[cut:])
        if set(words[:cut]) <= SUSPICIOUS_WORDS:
            for target in index.by_squashed.get(_squash(tail), ()):
                yield target, tuple(words[:cut])


def combosquat(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """The project name is a popular, mirrored or internal project's name plus only
    words squatters add to look trustworthy or newer (SUSPICIOUS_WORDS: ``requests-secure``,
    ``secure-requests``, ``colorama-update``), and is not itself popular. Plugin and
    variant names (``pytest-cov``, ``flask-login``, ``types-requests``) add other words
    and pass."""
    name = _project_name(artifact, context)
    if name is None or name in popular_ranks():
        return []
    if _internal_pattern(name, context.internal_patterns) is not None:
        return []
    seen: dict[str, tuple[str, ...]] = {}
    for index in _indexes(context):
        for target, words in _combos(name, index):
            if target != name and len(_squash(target)) >= COMBO_MIN_LENGTH:
                seen.setdefault(target, words)
    findings = []
    for target in sorted(seen, key=_order)[:MAX_FINDINGS]:
        added = ", ".join(repr(word) for word in seen[target])
        findings.append(
            Finding(
                COMBOSQUAT,
                Severity.MEDIUM,
                f"The name {safe_text(name)!r} is {_describe(target, context)} with "
                f"{added} added, words squatters use to pass a copy off as that project.",
                safe_text(f"{name} = {target} + {' + '.join(seen[target])}"),
            )
        )
    return findings
