"""control-characters, bidi-control-characters, invisible-characters and
mixed-script-confusable: text that is not what it looks like, graded by where it is."""

# The look-alike letters in this file are the point of it.
# ruff: noqa: RUF001

from __future__ import annotations

import io
import tarfile

import pytest

from quarantine import CheckContext, Severity, inspect_file
from quarantine.checks import CATALOGUE, Check
from quarantine.checks.unicode import (
    BIDI_CONTROL_CHARACTERS,
    CONTROL_CHARACTERS,
    INVISIBLE_CHARACTERS,
    MAX_PATH_FINDINGS,
    MIXED_SCRIPT_CONFUSABLE,
    bidi_control_characters,
    control_characters,
    invisible_characters,
    mixed_script_confusable,
)
from tests.support.builders import make_sdist, make_wheel, metadata_text

CHECKS = [
    Check(CONTROL_CHARACTERS, control_characters),
    Check(BIDI_CONTROL_CHARACTERS, bidi_control_characters),
    Check(INVISIBLE_CHARACTERS, invisible_characters),
    Check(MIXED_SCRIPT_CONFUSABLE, mixed_script_confusable),
]

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE
ZWSP = "\u200b"  # ZERO WIDTH SPACE
CYRILLIC_A = "\u0430"
CYRILLIC_I = "\u0456"  # looks like Latin i
ARMENIAN_U = "\u057d"  # looks like Latin u


def findings(path):
    """What the four checks (run as inspect_file runs them) find in the file."""
    return list(inspect_file(path, CheckContext(filename=path.name), checks=CHECKS).findings)


def wheel(tmp_path, *, name="demo", headers=None, summary="A test project", **kwargs):
    text = metadata_text(name, "1.0", summary=summary, extra_headers=headers)
    return make_wheel(tmp_path, "demo", "1.0", metadata=text, **kwargs)


def graded(path):
    return {(f.check, f.severity) for f in findings(path)}


# ---------------------------------------------------------------- poisoned


@pytest.mark.parametrize(
    ("name", "check"),
    [
        (f"demo{RLO}", BIDI_CONTROL_CHARACTERS),
        (f"de{ZWSP}mo", INVISIBLE_CHARACTERS),
        ("de\x1bmo", CONTROL_CHARACTERS),
        ("de\ufeffmo", INVISIBLE_CHARACTERS),  # a byte-order mark inside
    ],
)
def test_hidden_characters_in_the_project_name_are_critical(tmp_path, name, check):
    (finding,) = findings(wheel(tmp_path, name=name))
    assert (finding.check, finding.severity) == (check, Severity.CRITICAL)
    assert finding.evidence.startswith("Name: U+")
    assert finding.path == "demo-1.0.dist-info/METADATA"


def test_mixed_script_project_name_is_high(tmp_path):
    (finding,) = findings(wheel(tmp_path, name=f"p{CYRILLIC_A}ndas"))
    assert (finding.check, finding.severity) == (MIXED_SCRIPT_CONFUSABLE, Severity.HIGH)
    assert "U+0430 CYRILLIC SMALL LETTER A" in finding.evidence


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        ("Summary", f"Safe helpers {RLO}gnp.exe", (BIDI_CONTROL_CHARACTERS, Severity.MEDIUM)),
        ("Summary", "Fast\x1b[2J\x1b[H tools", (CONTROL_CHARACTERS, Severity.MEDIUM)),
        ("Summary", "next\x85line, back\x08space", (CONTROL_CHARACTERS, Severity.MEDIUM)),
        ("Summary", f"Official p{CYRILLIC_A}ypal SDK", (MIXED_SCRIPT_CONFUSABLE, Severity.LOW)),
        ("Summary", f"pass{ZWSP}word manager", (INVISIBLE_CHARACTERS, Severity.LOW)),
        ("Summary", "left\u200fto right", (INVISIBLE_CHARACTERS, Severity.LOW)),  # no RTL
        ("Summary", "join\u200ded", (INVISIBLE_CHARACTERS, Severity.LOW)),
        ("Summary", "tags\U000e0069\U000e0067\U000e006e", (INVISIBLE_CHARACTERS, Severity.LOW)),
        ("Author", f"Kenneth Reitz{RLO}", (BIDI_CONTROL_CHARACTERS, Severity.MEDIUM)),
        ("Author", f"Guido v{CYRILLIC_A}n Rossum", (MIXED_SCRIPT_CONFUSABLE, Severity.LOW)),
        ("Maintainer", "a\x07b", (CONTROL_CHARACTERS, Severity.MEDIUM)),
        ("Author-email", f"<a@p{CYRILLIC_A}ypal.com>", (MIXED_SCRIPT_CONFUSABLE, Severity.LOW)),
        ("Maintainer-email", f"x{ZWSP}@example.org", (INVISIBLE_CHARACTERS, Severity.LOW)),
    ],
)  # fmt: skip
def test_hidden_and_homoglyph_characters_in_metadata_prose(tmp_path, header, value, expected):
    headers = {} if header == "Summary" else {header: value}
    summary = value if header == "Summary" else "A test project"
    (finding,) = findings(wheel(tmp_path, headers=headers, summary=summary))
    assert (finding.check, finding.severity) == expected
    assert finding.evidence.startswith(f"{header}: U+")
    assert RLO not in finding.evidence and "\x1b" not in finding.evidence  # shown escaped


ENTRY_POINTS = {
    "name": f"[console_scripts]\np{CYRILLIC_I}p = demo:main\n",
    "bidi": f"[console_scripts]\ndemo{RLO}txt.exe = demo:main\n",
    "value": f"[console_scripts]\ndemo = de{ZWSP}mo:main\n",
    "group": f"[pytest{ZWSP}11]\ndemo = demo.plugin\n",
    "control": "[console_scripts]\ndemo\x1b = demo:main\n",
}


@pytest.mark.parametrize(
    ("entry_points", "check"),
    [
        (ENTRY_POINTS["name"], MIXED_SCRIPT_CONFUSABLE),
        (ENTRY_POINTS["bidi"], BIDI_CONTROL_CHARACTERS),
        (ENTRY_POINTS["value"], INVISIBLE_CHARACTERS),
        (ENTRY_POINTS["group"], INVISIBLE_CHARACTERS),
        (ENTRY_POINTS["control"], CONTROL_CHARACTERS),
    ],
)
def test_entry_points_that_are_not_what_they_look_like_are_high(tmp_path, entry_points, check):
    found = findings(wheel(tmp_path, entry_points=entry_points))
    assert {(f.check, f.severity) for f in found} == {(check, Severity.HIGH)}
    assert all(f.path == "demo-1.0.dist-info/entry_points.txt" for f in found)
    for finding in found:  # the characters themselves never reach a reviewer's screen
        assert finding.message.isprintable() and finding.evidence.isprintable()


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        (f"demo/invoice{RLO}fdp.py", (BIDI_CONTROL_CHARACTERS, Severity.HIGH)),
        (f"demo/__init__{ZWSP}.py", (INVISIBLE_CHARACTERS, Severity.HIGH)),
        ("demo/\x1b]8;;evil\x07.py", (CONTROL_CHARACTERS, Severity.HIGH)),
        (f"req{ARMENIAN_U}ests/__init__.py", (MIXED_SCRIPT_CONFUSABLE, Severity.MEDIUM)),
    ],
)
def test_member_paths_that_are_not_what_they_look_like(tmp_path, member, expected):
    (finding,) = findings(wheel(tmp_path, files={member: b""}))
    assert (finding.check, finding.severity) == expected
    assert finding.path == member


def test_many_bad_paths_are_summed_up(tmp_path):
    files = {f"demo/m{i}{ZWSP}.py": b"" for i in range(MAX_PATH_FINDINGS + 5)}
    found = findings(wheel(tmp_path, files=files))
    assert len(found) == MAX_PATH_FINDINGS + 1
    assert found[-1].message.startswith("5 more member paths")
    assert found[-1].severity is Severity.HIGH


def test_sdist_metadata_and_paths_are_checked(tmp_path):
    text = metadata_text("demo", "1.0", summary=f"x{RLO}y")
    path = make_sdist(tmp_path, "demo", "1.0", metadata=text, files={f"evil{RLO}.py": b""})
    assert {(f.check, f.path) for f in findings(path)} == {
        (BIDI_CONTROL_CHARACTERS, "demo-1.0/PKG-INFO"),
        (BIDI_CONTROL_CHARACTERS, f"demo-1.0/evil{RLO}.py"),
    }


def test_undecodable_tar_names_do_not_crash(tmp_path):
    path = tmp_path / "demo-1.0.tar.gz"
    data = metadata_text("demo", "1.0").encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, content in (("demo-1.0/PKG-INFO", data), ("demo-1.0/\udcff.py", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    assert "check-crashed" not in {f.check for f in findings(path)}


# ---------------------------------------------------------------- real look-alikes


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Summary", "一个用于处理Python数据的工具库"),  # Han and Latin, no spaces
        ("Summary", "Pythonで書かれた高速なパーサー"),  # kanji, kana, Latin in one run
        ("Summary", "파이썬용 HTTP 라이브러리"),
        ("Summary", "🚀 Fast 👩‍💻 tools for ❤️ and 🏳️‍🌈"),  # ZWJ and VS16 in emoji
        ("Summary", "αβ-CROWN: a fast neural network verifier with µs latency"),
        ("Summary", "Библиотека для работы с API Яндекса"),
        ("Summary", "ספרייה לעבודה עם JSON\u200f (גרסה 2)"),  # RLM in Hebrew text
        ("Summary", "مكتبة\u200c Python\u200f"),
        ("Summary", "Python के लिए उपकरण, Pythonका"),  # Latin with Devanagari
        ("Summary", "Café résumé naïve (NFD: cafe\u0301)"),
        ("Author", "Łukasz Langa"),
        ("Author", "Сергей Иванов"),
        ("Author", "محمد\u200cرضا شجریان"),  # ZWNJ in a Persian name
        ("Author", "Jürgen Groß, Ævar Arnfjörð Bjarmason"),
        ("Author", "Γιώργος (Giorgos) Κ."),
        ("Author", "Line one\n second line\tafter a tab"),  # folded header
        ("Author-email", "Сергей <sergey@пример.рф>, 李雷 <li@example.cn>"),
        ("Maintainer", "Kelvin Kelvin K-scale"),  # U+212A KELVIN SIGN is Latin
    ],
)
def test_real_non_latin_text_passes(tmp_path, header, value):
    headers = {} if header == "Summary" else {header: value}
    summary = value if header == "Summary" else "A test project"
    assert findings(wheel(tmp_path, headers=headers, summary=summary)) == []


def test_non_latin_member_paths_and_entry_points_pass(tmp_path):
    files = {
        "demo/__init__.py": b"",
        "demo/данные/файл_1.txt": b"",
        "demo/テスト/データ.json": b"",
        "demo/emoji/👩‍💻.txt": b"",
        "demo/test_μ_and_σ.py": b"",
    }
    entry_points = "[console_scripts]\ndemo = demo:main\ndemo-cli = demo.cli:run [extra]\n"
    assert findings(wheel(tmp_path, files=files, entry_points=entry_points)) == []


def test_unicode_checks_are_in_the_catalogue():
    assert {check.id for check in CHECKS} <= {check.id for check in CATALOGUE}
