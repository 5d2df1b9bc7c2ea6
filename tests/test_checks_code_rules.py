"""The source rules under the code checks (quarantine.checks._ast_rules), one file at a
time: name resolution, string folding, scopes and flow, reach, thresholds."""

from __future__ import annotations

import base64
import random
import textwrap

import pytest

from quarantine.checks._ast_rules import (
    BLOB_MIN_ENTROPY,
    BLOB_MIN_LENGTH,
    Rule,
    analyse,
    looks_encoded,
    shannon_entropy,
)

PAYLOAD = base64.b64encode(b"print('hi')").decode()


def rules(source: str, reach="script") -> list[str]:
    report = analyse(textwrap.dedent(source).lstrip("\n").encode(), reach)
    assert report.error is None, report.error
    return [hit.rule.value for hit in report.hits]


@pytest.mark.parametrize(
    "source",
    [
        "import subprocess as sp\nsp.run(['echo', 'hi'])",
        "from os import system as s\ns('echo hi')",
        "from os import *\nsystem('echo hi')",
        "import os\nrun = os.popen\nrun('echo hi')",
        "__import__('os').system('echo hi')",
        "getattr(__import__('o' + 's'), 'sys' + 'tem')('echo hi')",
        "import importlib\nimportlib.import_module('subprocess').call(['echo'])",
        "import sys, os\nsys.modules['os'].system('echo hi')",
        "import posix\nposix.system('echo hi')",
        "m = __import__('so'[::-1])\nm.system('echo hi')",
        "import os\ngetattr(os, f\"{'sys'}tem\")('echo hi')",
    ],
)
def test_process_execution_is_resolved_through_aliases(source):
    assert rules(source) == ["process"]


@pytest.mark.parametrize(
    "source",
    [
        f"import base64\nglobals()['__builtins__']['exec'](base64.b64decode('{PAYLOAD}'))",
        f"import base64, builtins\nbuiltins.__dict__['eval'](base64.b64decode('{PAYLOAD}'))",
        f"import base64\nrun = exec\nrun(base64.b64decode('{PAYLOAD}'))",
        f"import base64\nfrom base64 import *\nexec(b64decode('{PAYLOAD}'))",
        "exec(''.join(chr(c) for c in [112, 114, 105, 110, 116, 40, 49, 41]))",
        f"exec(bytes([{', '.join(str(b) for b in b'print(123456789)')}]))",
    ],
)
def test_builtins_reached_dynamically_still_count(source):
    assert rules(source) == ["decode-exec"]


def test_a_local_function_named_like_a_builtin_is_not_the_builtin():
    source = f"""
        import base64
        def exec(data):
            return len(data)
        exec(base64.b64decode('{PAYLOAD}'))
    """
    assert rules(source) == []


def test_flow_follows_returns_parameters_attributes_and_loops():
    source = f"""
        import base64

        class Loader:
            def __init__(self, blob):
                self.blob = blob

            def unpack(self):
                return base64.b64decode(self.blob)

        def run(code):
            for chunk in [code]:
                exec(chunk)

        run(Loader('{PAYLOAD}').unpack())
    """
    assert rules(source, "import") == ["decode-exec"]


def test_locals_of_different_functions_do_not_mix():
    source = """
        import base64, os, requests

        def one():
            data = base64.b64decode('aGk=')
            token = os.environ['API_TOKEN']
            return len(data) + len(token)

        def two(path):
            data = open(path).read()
            exec(data)
            token = 'public'
            requests.get('https://example.invalid', params={'t': token})

        one()
        two('x.py')
    """
    assert rules(source) == ["network"]


def test_globals_written_in_a_function_are_module_wide():
    source = f"""
        import base64
        BLOB = None

        def load():
            global BLOB
            BLOB = base64.b64decode('{PAYLOAD}')

        load()
        exec(BLOB)
    """
    assert rules(source, "import") == ["decode-exec"]


def test_import_reach_skips_uncalled_functions_and_the_main_block():
    source = """
        import os

        def helper():
            os.system('echo helper')

        class Tool:
            def go(self):
                os.system('echo method')

        @atexit_like
        def later():
            os.system('echo later')

        if __name__ == '__main__':
            os.system('echo main')
    """
    assert rules(source, "import") == []
    assert rules(source, "script") == ["process"]  # the main block runs as a script
    assert rules(source, "all") == ["process"] * 4


def test_reach_follows_calls_decorators_threads_and_instances():
    source = """
        import atexit, os, threading

        def local_decorator(function):
            function()
            return function

        @local_decorator
        def decorated():
            os.system('echo decorated')

        @atexit.register
        def at_exit():
            os.popen('echo at exit')

        def in_thread():
            os.spawnl(os.P_WAIT, '/bin/echo', 'echo')

        class Service:
            def start(self):
                os.execv('/bin/echo', ['echo'])

        threading.Thread(target=in_thread).start()
        Service().start()
    """
    lines = [hit.line for hit in analyse(textwrap.dedent(source).encode(), "import").hits]
    assert len(lines) == 4


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("os.path.expanduser('~/.bashrc')", "persistence-write"),
        ("os.path.join(os.environ['HOME'], '.profile')", "persistence-write"),
        ("os.path.join(os.getenv('HOME'), '.ssh', 'authorized_keys')", "persistence-write"),
        ("'/etc/cron.d/demo'", "persistence-write"),
        ("'/usr/lib/python3/site-packages/zzz.pth'", "persistence-write"),
        ("pathlib.Path.home() / 'Library' / 'LaunchAgents' / 'x.plist'", "persistence-write"),
        ("os.path.expanduser('~/.config/demo/settings.json')", "home-write"),
        ("'build/lib/demo/_version.py'", None),
        ("os.path.expanduser('~/.bashrc')", None),  # read mode: not a write
    ],
)
def test_writes_are_judged_by_where_they_go(path, rule):
    mode = "r" if rule is None and "bashrc" in path else "w"
    source = f"import os, pathlib\nwith open({path}, '{mode}') as f:\n    f.write('x')\n"
    assert rules(source) == ([] if rule is None else [rule])


def test_shell_reading_a_profile_is_not_a_persistence_write():
    assert rules("import os\nos.system('. ~/.profile && make')") == ["process"]


def test_a_decoded_string_passed_to_a_shell_is_decode_exec():
    source = f"import base64, os\nos.system(base64.b64decode('{PAYLOAD}').decode())"
    assert rules(source) == ["decode-exec"]


def test_non_secret_environment_variables_are_not_credentials():
    source = """
        import os, requests
        proxy = os.environ.get('HTTPS_PROXY')
        home = os.environ['HOME']
        requests.get('https://example.invalid', proxies={'https': proxy}, params={'h': home})
    """
    assert rules(source) == ["network"]


def test_exec_of_a_constant_string_is_analysed_in_turn():
    source = 'exec("import socket, os\\ns = socket.socket()\\nos.dup2(s.fileno(), 0)")'
    assert sorted(rules(source)) == ["network", "reverse-shell"]


def test_encoded_blob_thresholds():
    rng = random.Random(5)
    encoded = base64.b64encode(rng.randbytes(BLOB_MIN_LENGTH)).decode()
    assert shannon_entropy(encoded) > BLOB_MIN_ENTROPY
    assert looks_encoded(encoded, BLOB_MIN_LENGTH)
    assert looks_encoded(rng.randbytes(BLOB_MIN_LENGTH), BLOB_MIN_LENGTH)
    assert looks_encoded(rng.randbytes(BLOB_MIN_LENGTH).hex(), BLOB_MIN_LENGTH)  # 4 bits
    prose = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(400))
    assert not looks_encoded(prose, BLOB_MIN_LENGTH)
    assert not looks_encoded(encoded[: BLOB_MIN_LENGTH - 1], BLOB_MIN_LENGTH)
    source = f"DATA = '{encoded}'\nDOC = '''{prose}'''\n"
    assert rules(source) == [Rule.ENCODED_BLOB.value]


def test_pyarmor_and_marshal_markers():
    source = (
        "from pytransform import pyarmor_runtime\n"
        "pyarmor_runtime()\n"
        "import marshal\n"
        "code = marshal.loads(b'\\xe3" + "\\x00" * 40 + "')\n"
    )
    assert rules(source, "all") == ["pyarmor", "pyarmor", "marshal-blob"]


def test_imports_are_reported_for_local_module_resolution():
    source = "import a.b\nfrom . import c\nfrom .d import e\nfrom f import g as h\n"
    report = analyse(source.encode(), "script")
    assert set(report.imports) == {
        (0, "a.b"), (1, ""), (1, "c"), (1, "d"), (1, "d.e"), (0, "f"), (0, "f.g"),
    }  # fmt: skip


def test_unparseable_sources_say_whether_they_look_risky():
    risky = analyse(b"print 'x'\nimport subprocess\n", "script")
    assert risky.error and risky.error.startswith("SyntaxError") and risky.risky
    quiet = analyse(b"print 'x'\n", "script")
    assert quiet.error and not quiet.risky
    assert analyse(b"x = 1\n", "script").error is None
