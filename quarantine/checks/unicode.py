"""Text that is not what it looks like: control characters, bidirectional controls that
reorder what a reader sees (Trojan Source, CVE-2021-42574), invisible characters, and
letters of look-alike scripts mixed inside one word (a homoglyph: ``paypal``
with a Cyrillic ``a``, U+0430).

Looked for in the core metadata's Name, Summary, Author, Maintainer, Author-email and
Maintainer-email, in a wheel's entry points (group, name and object reference) and in
member paths. How much it matters depends on where it is (:class:`Place`): a project
name, command or file that is not what it looks like is how a user is led to install,
run or import the wrong thing; in a summary or an author's name it only misleads a
reader. Real non-Latin text passes: a Chinese summary, ``Łukasz``, ``Сергей``, a
Japanese sentence mixing kanji, kana and ``Python``, a Persian name with zero-width
non-joiners, an emoji sequence with joiners.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from quarantine.artifact import Artifact, ArtifactError, parse_entry_points
from quarantine.findings import CheckContext, Finding, Severity

CONTROL_CHARACTERS: Final = "control-characters"
BIDI_CONTROL_CHARACTERS: Final = "bidi-control-characters"
INVISIBLE_CHARACTERS: Final = "invisible-characters"
MIXED_SCRIPT_CONFUSABLE: Final = "mixed-script-confusable"

# A hostile archive can name thousands of members with these characters; a reviewer
# needs the first few, then a count.
MAX_PATH_FINDINGS: Final = 10
MAX_EVIDENCE: Final = 500
EXCERPT_CHARS: Final = 120  # of a long value, shown around the first character found

# Embeddings, overrides and isolates: they reorder the text around them when displayed.
BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Characters that display as nothing although they are not format characters (Cf, all
# of which count as invisible): the combining grapheme joiner, Hangul fillers, the
# braille blank. Variation selectors are marks that only change the glyph before them.
INVISIBLE_NON_FORMAT: Final = frozenset("\u034f\u115f\u1160\u3164\uffa0\u2800")
VARIATION_SELECTORS: Final = frozenset(
    [chr(c) for c in range(0xFE00, 0xFE10)] + [chr(c) for c in range(0xE0100, 0xE01F0)]
)
# Invisible characters that real writing needs. Zero-width (non-)joiners (Persian,
# Indic scripts, emoji sequences) and variation selectors (emoji presentation) pass in
# prose and paths when they follow a non-ASCII character; direction marks (LRM, RLM,
# ALM) pass there when the text holds right-to-left letters. Never in names.
IN_WORD_INVISIBLES: Final = frozenset("\u200c\u200d") | VARIATION_SELECTORS
DIRECTION_MARKS: Final = frozenset("\u200e\u200f\u061c")
# Whitespace controls that prose may hold (folded header lines keep their newline).
PROSE_WHITESPACE: Final = frozenset("\t\n")

# Scripts (by the first word of a letter's Unicode name; the stdlib has no Script
# property) that are look-alikes of Latin: mixing one with Latin in a word is how a
# homoglyph is made. Unicode TS #39's "moderately restrictive" profile names Cyrillic,
# Greek and Cherokee; Armenian and Coptic have as many Latin look-alikes.
LATIN_LOOKALIKE_SCRIPTS: Final = frozenset({"CYRILLIC", "GREEK", "CHEROKEE", "ARMENIAN", "COPTIC"})
# Scripts that East Asian writing mixes inside one word (TS #39 allows these with Latin).
EAST_ASIAN_SCRIPTS: Final = frozenset(
    {"LATIN", "HAN", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO"}
)
# Leading name words that are not scripts: letter-like symbols (K KELVIN SIGN is Latin,
# MICRO SIGN and the mathematical alphabets belong to no script) and marks shared by
# scripts; None means "no script", which mixes with anything.
_NAME_WORD_SCRIPTS: Final[dict[str, str | None]] = {
    "CJK": "HAN",
    "IDEOGRAPHIC": "HAN",
    "HENTAIGANA": "HIRAGANA",
    "KELVIN": "LATIN",
    "ANGSTROM": "LATIN",
    "FEMININE": "LATIN",
    "MASCULINE": "LATIN",
    **dict.fromkeys(
        (
            "",
            "ALEF",
            "BET",
            "GIMEL",
            "DALET",
            "CARON",
            "EULER",
            "INFORMATION",
            "MICRO",
            "OHM",
            "PLANCK",
            "SCRIPT",
            "SUPERSCRIPT",
            "TURNED",
            "MODIFIER",
            "MATHEMATICAL",
            "DOUBLE-STRUCK",
            "BLACK-LETTER",
            "KATAKANA-HIRAGANA",
            "VEDIC",
            "VERTICAL",
            "ROMAN",
            "MASU",
        )
    ),
}


@dataclass(frozen=True, slots=True)
class Place:
    """Where a text sits, and so how much each kind of character there matters."""

    control: Severity
    bidi: Severity
    invisible: Severity
    mixed_script: Severity
    prose: bool = False  # may hold tabs and newlines
    in_word_invisibles: bool = False  # may hold IN_WORD_INVISIBLES after non-ASCII


NAME: Final = Place(Severity.CRITICAL, Severity.CRITICAL, Severity.CRITICAL, Severity.HIGH)
ENTRY_POINT: Final = Place(Severity.HIGH, Severity.HIGH, Severity.HIGH, Severity.HIGH)
MEMBER_PATH: Final = Place(
    Severity.HIGH, Severity.HIGH, Severity.HIGH, Severity.MEDIUM, in_word_invisibles=True
)
PROSE: Final = Place(
    Severity.MEDIUM,
    Severity.MEDIUM,
    Severity.LOW,
    Severity.LOW,
    prose=True,
    in_word_invisibles=True,
)

# Core metadata fields (packaging's raw names) read as prose, with their header names.
PROSE_FIELDS: Final = (
    ("summary", "Summary"),
    ("author", "Author"),
    ("maintainer", "Maintainer"),
    ("author_email", "Author-email"),
    ("maintainer_email", "Maintainer-email"),
)


@dataclass(frozen=True, slots=True)
class _Text:
    label: str  # what a reviewer calls it: "Summary", "member path", ...
    value: str
    place: Place
    path: str | None  # the member it is in (or is)


def control_characters(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Control characters (C0, DEL, C1: escape sequences, carriage returns, backspaces)
    in names, metadata prose, entry points or member paths; they rewrite what a terminal
    or log shows. Tabs and newlines pass in prose."""
    return _report(
        artifact,
        CONTROL_CHARACTERS,
        lambda place: place.control,
        _controls,
        "holds control characters, which can rewrite what a terminal or log shows",
    )


def bidi_control_characters(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069)
    that display text in another order than it is read (Trojan Source)."""
    return _report(
        artifact,
        BIDI_CONTROL_CHARACTERS,
        lambda place: place.bidi,
        _bidi_controls,
        "holds bidirectional controls, so it displays in another order than it reads",
    )


def invisible_characters(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Characters that display as nothing: zero-width spaces and joiners, direction
    marks, byte-order marks, soft hyphens, tag characters, Hangul fillers, variation
    selectors. In prose and paths, joiners and variation selectors after a non-ASCII
    character and direction marks in right-to-left text pass (Persian, Hebrew and emoji
    need them)."""
    return _report(
        artifact,
        INVISIBLE_CHARACTERS,
        lambda place: place.invisible,
        _invisibles,
        "holds invisible characters, so it is not the text it looks like",
    )


def mixed_script_confusable(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """Words (runs of letters, marks and digits) that mix scripts real writing keeps
    apart: Latin with a look-alike of it (Cyrillic, Greek, Cherokee, Armenian, Coptic),
    or two non-Latin scripts (East Asian writing's mix of Han, kana, Hangul and Latin
    excepted). Such a word is a homoglyph of another; words each in one script pass,
    whatever the script."""
    return _report(
        artifact,
        MIXED_SCRIPT_CONFUSABLE,
        lambda place: place.mixed_script,
        _mixed_script_letters,
        "mixes look-alike letters of different scripts in one word (a homoglyph)",
    )


# ---------------------------------------------------------------- what is where


def _texts(artifact: Artifact) -> Iterator[_Text]:
    core = artifact.core_metadata
    if core is not None:
        if core.name:
            yield _Text("Name", core.name, NAME, core.path)
        for field, label in PROSE_FIELDS:
            value = core.raw.get(field)
            if isinstance(value, str) and value:
                yield _Text(label, value, PROSE, core.path)
        if artifact.kind == "wheel":  # core metadata found: the .dist-info is known
            yield from _entry_point_texts(artifact)
    for member in artifact.members:
        yield _Text("member path", member.name, MEMBER_PATH, member.name)


def _entry_point_texts(artifact: Artifact) -> Iterator[_Text]:
    data = artifact.entry_points()
    if data is None:
        return
    try:
        groups = parse_entry_points(data)
    except ArtifactError:
        return  # not text an installer reads either
    path = f"{artifact.dist_info}/entry_points.txt"
    for group, entries in groups.items():
        yield _Text("entry point group", group, ENTRY_POINT, path)
        where = f"[{escaped(group)}]"
        for name, value in entries.items():
            yield _Text(f"entry point name in {where}", name, ENTRY_POINT, path)
            yield _Text(f"entry point {escaped(name)} in {where}", value, ENTRY_POINT, path)


# ---------------------------------------------------------------- finding characters


def _plain(text: str) -> bool:
    """Printable ASCII holds nothing any of these checks looks for (the fast path)."""
    return text.isascii() and text.isprintable()


def _controls(text: str, place: Place) -> list[str]:
    if _plain(text):
        return []
    allowed = PROSE_WHITESPACE if place.prose else frozenset()
    return [c for c in text if unicodedata.category(c) == "Cc" and c not in allowed]


def _bidi_controls(text: str, place: Place) -> list[str]:
    if _plain(text):
        return []
    return [c for c in text if c in BIDI_CONTROLS]


def _invisibles(text: str, place: Place) -> list[str]:
    if _plain(text):
        return []
    found = []
    previous = ""
    for char in text:
        if char not in BIDI_CONTROLS and (
            char in INVISIBLE_NON_FORMAT
            or char in VARIATION_SELECTORS
            or unicodedata.category(char) == "Cf"
        ):
            needed = place.in_word_invisibles and (
                (char in IN_WORD_INVISIBLES and previous and not previous.isascii())
                or (char in DIRECTION_MARKS and _has_right_to_left(text))
            )
            if not needed:
                found.append(char)
        previous = char
    return found


def _has_right_to_left(text: str) -> bool:
    """Whether ``text`` holds a right-to-left letter (not just a mark: RLM is class R)."""
    return any(
        unicodedata.bidirectional(char) in ("R", "AL") and unicodedata.category(char)[0] == "L"
        for char in text
    )


def _mixed_script_letters(text: str, place: Place) -> list[str]:
    """The letters that do not belong in their word: those outside each offending word's
    most common script."""
    if text.isascii():
        return []
    found: list[str] = []
    for word in _words(text):
        scripts = Counter(script for char in word if (script := _script(char)) is not None)
        if _scripts_mix_naturally(frozenset(scripts)):
            continue
        main = scripts.most_common(1)[0][0]
        found.extend(char for char in word if _script(char) not in (None, main))
    return found


def _words(text: str) -> Iterator[str]:
    word: list[str] = []
    for char in text:
        if unicodedata.category(char)[0] in "LMN":
            word.append(char)
        elif word:
            yield "".join(word)
            word = []
    if word:
        yield "".join(word)


def _scripts_mix_naturally(scripts: frozenset[str]) -> bool:
    if len(scripts) <= 1 or scripts <= EAST_ASIAN_SCRIPTS:
        return True
    return len(scripts) == 2 and "LATIN" in scripts and not scripts & LATIN_LOOKALIKE_SCRIPTS


@lru_cache(maxsize=4096)
def _script(char: str) -> str | None:
    """A letter's script, from the first word of its Unicode name (``CYRILLIC SMALL
    LETTER A``; FULLWIDTH/HALFWIDTH forms by the second); None for non-letters and
    letter-like symbols of no script."""
    if unicodedata.category(char)[0] != "L":
        return None
    words = unicodedata.name(char, "").split(" ")
    first = words[1] if words[0] in ("FULLWIDTH", "HALFWIDTH") and len(words) > 1 else words[0]
    return _NAME_WORD_SCRIPTS.get(first, first)


# ---------------------------------------------------------------- findings


def _report(
    artifact: Artifact,
    check: str,
    severity_in: Callable[[Place], Severity],
    find: Callable[[str, Place], list[str]],
    says: str,
) -> list[Finding]:
    findings: list[Finding] = []
    paths: list[Finding] = []
    for text in _texts(artifact):
        chars = find(text.value, text.place)
        if not chars:
            continue
        finding = Finding(
            check,
            severity_in(text.place),
            f"The {text.label} {says}.",
            _clip(f"{text.label}: {_names(chars)} in {visible(_excerpt(text.value, chars[0]))}"),
            text.path,
        )
        (paths if text.place is MEMBER_PATH else findings).append(finding)
    findings += paths[:MAX_PATH_FINDINGS]
    if rest := paths[MAX_PATH_FINDINGS:]:
        findings.append(
            Finding(
                check,
                rest[0].severity,
                f"{len(rest)} more member paths are like the ones above.",
                _clip("; ".join(finding.evidence for finding in rest)),
            )
        )
    return findings


def visible(text: str) -> str:
    """``text`` quoted and :func:`escaped`, for evidence."""
    return f"'{escaped(text)}'"


def escaped(text: str) -> str:
    """``text`` with every character that would not show as itself (controls, format
    characters, invisible letters, non-space whitespace) as a ``\\x``/``\\u`` escape."""
    shown = []
    for char in text:
        hidden = (
            not char.isprintable() or char in INVISIBLE_NON_FORMAT or char in VARIATION_SELECTORS
        )
        if not hidden:
            shown.append(char)
        elif ord(char) <= 0xFF:
            shown.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            shown.append(f"\\u{ord(char):04x}")
        else:
            shown.append(f"\\U{ord(char):08x}")
    return "".join(shown)


def _excerpt(text: str, char: str) -> str:
    """Up to EXCERPT_CHARS of ``text`` around the first ``char``."""
    if len(text) <= EXCERPT_CHARS:
        return text
    start = max(0, text.index(char) - EXCERPT_CHARS // 2)
    end = start + EXCERPT_CHARS
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


def _names(chars: list[str]) -> str:
    unique = list(dict.fromkeys(chars))
    named = [f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed')}" for c in unique[:5]]
    if len(unique) > 5:
        named.append(f"{len(unique) - 5} more")
    return ", ".join(named)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EVIDENCE else text[: MAX_EVIDENCE - 1] + "…"
