"""What a Python source file would do when it runs, read with :mod:`ast` only.

Nothing here compiles, imports or executes the source: :func:`analyse` parses it (within
a size cap the caller enforces, with every parser failure caught) and walks the tree.
The result is a list of :class:`Hit`: single behaviours (network access, process
execution, a write into the home directory, a large encoded literal) and *chains*, where
one behaviour feeds another (decoded data executed, a credential sent over the network,
a download executed, a shell on a socket, a write to a persistence location).

Names are resolved through imports and aliases (``import subprocess as sp``,
``from os import system as s``, ``__import__('os')``, ``getattr(os, 'sys' + 'tem')``),
string expressions are folded where their parts are constant, and data flow is followed
through assignments, ``with ... as``, loop targets, returns and arguments of local
functions, attributes (``self.x``) and writes to files, flow-insensitively but with
Python's scopes (a function's locals are its own): a chain needs the data of one
behaviour to reach the other, not just both in one file.

Which code counts depends on ``reach``: ``"all"`` is every statement; ``"import"`` is
what runs on import (module-level statements and class bodies, outside an
``if __name__ == "__main__"`` block, plus the bodies of local functions and classes those
statements refer to, transitively); ``"script"`` is the same with the ``__main__`` block.
"""

from __future__ import annotations

import ast
import enum
import itertools
import math
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

Reach = Literal["script", "import", "all"]


class Rule(enum.StrEnum):
    # single behaviours
    NETWORK = "network"
    PROCESS = "process"
    HOME_WRITE = "home-write"
    ENCODED_BLOB = "encoded-blob"
    # chains
    DECODE_EXEC = "decode-exec"
    CREDENTIAL_SEND = "credential-send"
    DOWNLOAD_EXEC = "download-exec"
    DOWNLOAD_RUN = "download-run"
    REVERSE_SHELL = "reverse-shell"
    PERSISTENCE = "persistence-write"
    # obfuscators
    PYARMOR = "pyarmor"
    MARSHAL_BLOB = "marshal-blob"
    ENCODED_EXEC = "encoded-exec"


CHAINS: Final = frozenset(
    {
        Rule.DECODE_EXEC,
        Rule.CREDENTIAL_SEND,
        Rule.DOWNLOAD_EXEC,
        Rule.DOWNLOAD_RUN,
        Rule.REVERSE_SHELL,
        Rule.PERSISTENCE,
    }
)
PATTERNS: Final = frozenset({Rule.NETWORK, Rule.PROCESS, Rule.HOME_WRITE, Rule.ENCODED_BLOB})
OBFUSCATORS: Final = frozenset({Rule.PYARMOR, Rule.MARSHAL_BLOB, Rule.ENCODED_EXEC})

# ---------------------------------------------------------------- thresholds

# Evidence: the call as ast.unparse writes it, clipped.
MAX_EVIDENCE_TEXT: Final = 200
# A string or bytes literal is an encoded blob (single pattern) from this length, when
# its Shannon entropy reaches BLOB_MIN_ENTROPY bits per symbol (base64 is about 6.0,
# compressed bytes 7.9, English prose and source code 4.0 to 4.8) or it is all hex or
# base64 characters with no whitespace.
BLOB_MIN_LENGTH: Final = 1024
BLOB_MIN_ENTROPY: Final = 5.0
# A literal with more than one space in this many symbols is not encoded data.
MAX_SPACE_SHARE: Final = 50
# An encoded literal given to exec/eval/compile or marshal.loads counts from this length
# (short payloads such as base64 of ``os.system(...)`` are caught as decode -> exec).
ENCODED_LITERAL_MIN_LENGTH: Final = 64
MARSHAL_LITERAL_MIN_LENGTH: Final = 32
# bytes([...]) of this many integer constants is a way to hide a string.
BYTE_LIST_MIN_LENGTH: Final = 16
# Folding strings and resolving names recurses at most this deep.
MAX_FOLD_DEPTH: Final = 24
# Flow is carried along at most this many bindings (a file of 2 MiB has fewer than
# 100,000; each binding is looked at again only when what it reads changes).
MAX_FLOW_STEPS: Final = 200_000
# A constant string given to exec/eval/compile is itself analysed, this many levels deep
# and up to this size.
MAX_NESTED_EXEC_DEPTH: Final = 2
MAX_NESTED_EXEC_SIZE: Final = 256 * 1024
MAX_HITS: Final = 200
# A one-line literal whose source is this many times longer than its value is written
# in escapes (``"\\x69\\x6d\\x70..."`` is 4 to 1; UTF-8 text is at most 3 to 1).
ESCAPED_RATIO: Final = 3.5
ESCAPED_LITERAL_MIN_LENGTH: Final = 32
# Paths longer than this are not paths.
MAX_PATH_LENGTH: Final = 4096

# ---------------------------------------------------------------- rule tables

NETWORK_CALLS: Final = frozenset(
    {
        "urllib.request.urlopen",
        "urllib.request.urlretrieve",
        "urllib.request.build_opener",
        "urllib.request.OpenerDirector",
        "urllib.urlopen",
        "urllib.urlretrieve",
        "urllib2.urlopen",
        "urllib2.build_opener",
        "http.client.HTTPConnection",
        "http.client.HTTPSConnection",
        "httplib.HTTPConnection",
        "httplib.HTTPSConnection",
        "socket.socket",
        "socket.create_connection",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyname_ex",
        "socket.gethostbyaddr",
        "ssl.get_server_certificate",
        "ftplib.FTP",
        "ftplib.FTP_TLS",
        "smtplib.SMTP",
        "smtplib.SMTP_SSL",
        "telnetlib.Telnet",
        "xmlrpc.client.ServerProxy",
        "xmlrpclib.ServerProxy",
        "asyncio.open_connection",
        "pycurl.Curl",
        "wget.download",
        "urllib3.PoolManager",
        "urllib3.ProxyManager",
        "urllib3.HTTPConnectionPool",
        "urllib3.HTTPSConnectionPool",
        "urllib3.connection_from_url",
        "urllib3.request",
        "websocket.create_connection",
        "websocket.WebSocket",
        "websocket.WebSocketApp",
        "websockets.connect",
        "paramiko.SSHClient",
        "paramiko.Transport",
        "aiohttp.ClientSession",
        "aiohttp.request",
        "dns.resolver.resolve",
        "dns.resolver.query",
    }
)
# requests.get, httpx.post, requests.api.request, requests.sessions.Session, ...
HTTP_CLIENT_MODULES: Final = frozenset({"requests", "httpx"})
HTTP_CLIENT_FUNCTIONS: Final = frozenset(
    {
        "get",
        "post",
        "put",
        "patch",
        "delete",
        "head",
        "options",
        "request",
        "stream",
        "Session",
        "session",
        "Client",
        "AsyncClient",
    }
)

PROCESS_CALLS: Final = frozenset(
    {
        "os.system",
        "os.popen",
        "os.popen2",
        "os.popen3",
        "os.popen4",
        "os.startfile",
        "os.posix_spawn",
        "os.posix_spawnp",
        "subprocess.Popen",
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.getoutput",
        "subprocess.getstatusoutput",
        "pty.spawn",
        "commands.getoutput",
        "commands.getstatusoutput",
        "platform.popen",
        "popen2.popen2",
        "popen2.popen3",
        "popen2.popen4",
        "asyncio.create_subprocess_exec",
        "asyncio.create_subprocess_shell",
        "distutils.spawn.spawn",
    }
)
# os.spawnl, os.spawnvpe, os.execv, os.execlp, ...
PROCESS_PREFIXES: Final = ("os.spawn", "os.exec")

EXEC_CALLS: Final = frozenset(
    {"exec", "eval", "compile", "execfile", "runpy.run_path", "runpy.run_module"}
)
# Those whose first argument is source code (analysed in turn when it is a constant).
SOURCE_EXEC_CALLS: Final = frozenset({"exec", "eval", "compile"})
# Code objects built from data run when called: types.FunctionType(marshal.loads(...), {}).
CODE_OBJECT_CALLS: Final = frozenset({"types.FunctionType", "types.LambdaType"})

DECODE_CALLS: Final = frozenset(
    {
        "base64.b64decode",
        "base64.b32decode",
        "base64.b32hexdecode",
        "base64.b16decode",
        "base64.a85decode",
        "base64.b85decode",
        "base64.decodebytes",
        "base64.decodestring",
        "base64.standard_b64decode",
        "base64.urlsafe_b64decode",
        "binascii.a2b_base64",
        "binascii.a2b_hex",
        "binascii.a2b_uu",
        "binascii.a2b_qp",
        "binascii.unhexlify",
        "zlib.decompress",
        "zlib.decompressobj",
        "gzip.decompress",
        "bz2.decompress",
        "lzma.decompress",
        "marshal.loads",
        "bytes.fromhex",
        "bytearray.fromhex",
    }
)
# codecs.decode(data, codec) and py2 str.decode(codec) with a codec that is not a text
# encoding; normalized (lower case, "-" -> "_").
DECODING_CODECS: Final = frozenset(
    {
        "rot13",
        "rot_13",
        "base64",
        "base_64",
        "base64_codec",
        "hex",
        "hex_codec",
        "zlib",
        "zlib_codec",
        "zip",
        "bz2",
        "bz2_codec",
        "uu",
        "uu_codec",
        "quopri",
        "quopri_codec",
    }
)

# Reads of who and where the user is (sent home by credential stealers and beacons).
# platform.uname/os.uname are left out: setup scripts pick a binary by machine type.
CREDENTIAL_CALLS: Final = frozenset(
    {
        "keyring.get_password",
        "keyring.get_credential",
        "win32crypt.CryptUnprotectData",
        "getpass.getuser",
        "os.getlogin",
        "socket.gethostname",
        "socket.getfqdn",
        "platform.node",
    }
)
CREDENTIAL_PREFIXES: Final = ("browser_cookie3.",)
ENV_MAPPINGS: Final = frozenset({"os.environ", "os.environb"})
ENV_GETTERS: Final = frozenset({"os.getenv", "os.getenvb", "os.environ.get", "os.environb.get"})
# An environment variable whose name looks like a secret.
SECRET_ENV_NAME: Final = re.compile(
    r"TOKEN|SECRET|PASSW|PASSPHRASE|PWD$|API_?KEY|ACCESS_?KEY|PRIVATE|CREDENTIAL|AUTH|COOKIE"
    r"|SESSION|_KEY$|^KEY$|^AWS_|^GITHUB_|^GH_|^GITLAB|^NPM_|^PYPI|^TWINE|^AZURE_|^GCP_|^GOOGLE_"
    r"|^OPENAI|^ANTHROPIC|^HF_|^HUGGING|^SLACK|^DISCORD|^TELEGRAM|^DOCKER|^KUBE|^VAULT|^SSH_",
    re.IGNORECASE,
)
# Files that hold credentials (matched in folded, lower-cased paths with "/" separators).
CREDENTIAL_PATH: Final = re.compile(
    r"\.aws/(?:credentials|config)|\.ssh/(?:id_|identity)|(?:^|[/~])id_(?:rsa|dsa|ecdsa|ed25519)"
    r"|(?:^|[/~])[._]netrc|\.pypirc|\.git-credentials|\.docker/config\.json|\.kube/config"
    r"|\.npmrc|\.gnupg|\.config/gcloud|\.azure/|/etc/shadow|/etc/passwd|login data|local state"
    r"|cookies\.sqlite|key4\.db|logins\.json|wallet\.dat|\.(?:bash|zsh)_history"
    r"|local storage/leveldb|\.electrum|keychain|\.vault-token|\.terraform\.d/credentials"
    r"|\.config/gh/hosts\.yml"
)
# Cheap test before CREDENTIAL_PATH (most string literals are not paths).
CREDENTIAL_HINT: Final = re.compile(r"[./\\]|login data|local state|keychain|wallet", re.IGNORECASE)
# Places whose change makes code run later: shell start-up files, SSH keys, cron, init
# systems, autostart entries, the dynamic loader, Python's own start-up hooks.
PERSISTENCE_PATH: Final = re.compile(
    r"(?:^|[/~])\.(?:bashrc|bash_profile|bash_login|bash_logout|profile|zshrc|zprofile|zshenv"
    r"|zlogin|cshrc|tcshrc|kshrc)\b|\.config/fish/config\.fish|authorized_keys|/etc/cron"
    r"|/var/spool/cron|\bcrontab\b|/etc/rc\.local|/etc/profile|/etc/(?:bash\.)?bashrc"
    r"|/etc/systemd/|\.config/systemd/user|/etc/init\.d/|\.config/autostart"
    r"|library/launch(?:agents|daemons)|/etc/ld\.so\.preload|/etc/sudoers"
    r"|currentversion/run|start menu/programs/startup"
)
# Writing one of these makes Python run code at every start-up (a write, not a wheel member).
PYTHON_STARTUP_PATH: Final = re.compile(r"\.pth$|(?:^|/)(?:site|user)customize\.py$")
# A shell command that writes a file it names.
WRITE_COMMAND: Final = re.compile(
    r">|\btee\b|\bcp\b|\bmv\b|\bln\s|\bcrontab\b|\bsed\s+-i|\bsystemctl\b|\blaunchctl\b"
    r"|\breg\s+add\b|\binstall\s"
)
# Shell command lines (the folded first argument of a process call).
DOWNLOAD_TOOL: Final = re.compile(
    r"\b(?:curl|wget|fetch|invoke-webrequest|iwr|invoke-restmethod|irm|downloadstring"
    r"|downloadfile|bitsadmin|start-bitstransfer)\b|certutil\S*\s.*urlcache",
    re.IGNORECASE,
)
RUN_AFTER_DOWNLOAD: Final = re.compile(
    r"\|\s*(?:sudo\s+)?(?:ba|z|da|k|c)?sh\b|\|\s*python[0-9.]*\b|\|\s*perl\b|\biex\b"
    r"|invoke-expression|\bsh\s+-c\s*[\"']?\$\(|\bsource\s+<\(",
    re.IGNORECASE,
)
MAKE_EXECUTABLE: Final = re.compile(
    r"chmod\s+[0-7]*\+?[0-7]*x|chmod\s+[0-7]*[1357][0-7]{2}\b|&&\s*\./"
)
REVERSE_SHELL_COMMAND: Final = re.compile(
    r"/dev/(?:tcp|udp)/|\b(?:nc|ncat|netcat|nc\.traditional)\b[^|;&]*\s-[ec]\s"
    r"|\bsocat\b.*\bexec:|\b(?:ba)?sh\s+-i\s*[>&]",
    re.IGNORECASE,
)
DECODE_COMMAND: Final = re.compile(
    r"base64\s+(?:-d|--decode|-D)|b64decode|decompress|fromhex|unhexlify|rot_?13",
    re.IGNORECASE,
)
# PowerShell decodes and runs a base64 command line itself.
POWERSHELL_ENCODED: Final = re.compile(
    r"\bpowershell(?:\.exe)?\b.*\s-e(?:nc(?:odedcommand)?)?\s", re.IGNORECASE
)
EXEC_COMMAND: Final = re.compile(
    r"\bexec\s*\(|\beval\s*\(|\|\s*(?:ba|z)?sh\b|\bpython[0-9.]*\s+-c\b", re.IGNORECASE
)
PYARMOR_MODULE: Final = re.compile(r"^(?:pyarmor_runtime(?:_\d+)?|pytransform)(?:\.|$)")
PYARMOR_NAMES: Final = frozenset(
    {"__pyarmor__", "__armor_enter__", "__armor_exit__", "__armor_wrap__", "pyarmor_runtime"}
)

# Names resolved without an import.
BUILTIN_NAMES: Final = frozenset(
    {
        "exec",
        "eval",
        "compile",
        "execfile",
        "__import__",
        "getattr",
        "open",
        "file",
        "chr",
        "bytes",
        "bytearray",
        "globals",
        "locals",
        "vars",
        "__builtins__",
    }
)
IMPORT_FUNCTIONS: Final = frozenset({"__import__", "importlib.import_module"})
BUILTIN_MODULES: Final = frozenset({"builtins", "__builtin__", "__builtins__"})
# Calls that give back a path built from their arguments.
PATH_JOINERS: Final = frozenset(
    {
        "os.path.join",
        "posixpath.join",
        "ntpath.join",
        "pathlib.Path",
        "pathlib.PurePath",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
    }
)
PATH_PASSTHROUGH: Final = frozenset(
    {
        "os.path.expanduser",
        "os.path.expandvars",
        "os.path.abspath",
        "os.path.realpath",
        "os.path.normpath",
        "os.fspath",
        "str",
    }
)
HOME_CALLS: Final = frozenset({"pathlib.Path.home", "pathlib.PosixPath.home"})
HOME_VARIABLES: Final = frozenset({"HOME", "USERPROFILE", "APPDATA", "LOCALAPPDATA"})
OPEN_CALLS: Final = frozenset({"open", "file", "io.open", "codecs.open", "os.fdopen"})
# (call, index of the destination argument)
COPY_CALLS: Final = {
    "shutil.copy": 1,
    "shutil.copy2": 1,
    "shutil.copyfile": 1,
    "shutil.copytree": 1,
    "shutil.move": 1,
    "os.rename": 1,
    "os.replace": 1,
    "os.symlink": 1,
    "os.link": 1,
    "urllib.request.urlretrieve": 1,
    "urllib.urlretrieve": 1,
}
PATH_WRITE_METHODS: Final = frozenset({"write_text", "write_bytes", "symlink_to", "hardlink_to"})
DOWNLOAD_TO_PATH: Final = frozenset(
    {"urllib.request.urlretrieve", "urllib.urlretrieve", "wget.download"}
)
CHMOD_CALLS: Final = frozenset({"os.chmod", "os.fchmod", "os.lchmod"})
DUP_CALLS: Final = frozenset({"os.dup2", "os.dup"})
# Methods that decode what they are given, whatever object they belong to.
DECODING_METHODS: Final = frozenset({"decrypt", "decompress", "b64decode", "unhexlify"})
# Method calls that put their arguments into the object they are called on.
MUTATING_METHODS: Final = frozenset(
    {"append", "extend", "update", "write", "writelines", "insert", "add", "setdefault"}
)
HOME: Final = "~"
MAIN_SCOPE: Final = -1
UNKNOWN: Final = "\0"
# A folded path distinctive enough to follow (not just separators and unknown parts).
_DISTINCT_PATH: Final = re.compile(r"[A-Za-z0-9_]{2}")


@dataclass(frozen=True, slots=True)
class Hit:
    rule: Rule
    line: int
    text: str


@dataclass(frozen=True, slots=True)
class Report:
    """What :func:`analyse` found. ``error`` says why the source could not be analysed
    (then ``risky`` says whether its text names risky calls); ``imports`` are the modules
    it imports, as ``(level, dotted name)`` (level > 0: relative)."""

    hits: tuple[Hit, ...] = ()
    imports: tuple[tuple[int, str], ...] = ()
    error: str | None = None
    risky: bool = False


# What a source file that cannot be parsed mentions, judged on its text.
RISKY_TEXT: Final = re.compile(
    rb"\b(?:exec|eval|system|popen|subprocess|socket|urllib2?|urlopen|urlretrieve|requests"
    rb"|httpx|b64decode|decompress|marshal|fromhex|unhexlify|__import__|import_module"
    rb"|getattr|pyarmor|ctypes)\b"
)


def analyse(source: bytes, reach: Reach) -> Report:
    """Parse ``source`` (never run it) and report what the code in ``reach`` does.
    Never raises for hostile input: a file that cannot be parsed or walked gets a
    Report with ``error``."""
    return _analyse(source, reach, depth=0)


def _analyse(source: bytes | str, reach: Reach, depth: int) -> Report:
    try:
        with warnings.catch_warnings():
            # invalid escape sequences and the like: the file's problem, not ours
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError, OverflowError) as exc:
        return _unparsed(source, f"{type(exc).__name__}: {exc}")
    except (RecursionError, MemoryError) as exc:
        return _unparsed(source, f"{type(exc).__name__}: too deeply nested to parse")
    try:
        return _Module(tree, reach, depth).report()
    except (RecursionError, MemoryError) as exc:
        return _unparsed(source, f"{type(exc).__name__}: too deeply nested to analyse")


def _unparsed(source: bytes | str, error: str) -> Report:
    data = source.encode("utf-8", "replace") if isinstance(source, str) else source
    return Report(error=error[:300], risky=RISKY_TEXT.search(data) is not None)


def shannon_entropy(value: str | bytes) -> float:
    """Bits per symbol of ``value``."""
    if not value:
        return 0.0
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in Counter(value).values())


_HEX: Final = re.compile(r"[0-9a-fA-F]+")
_BASE64: Final = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


def looks_encoded(value: str | bytes, min_length: int) -> bool:
    """A literal of at least ``min_length`` symbols that is all hex or base64 characters,
    or whose entropy reaches BLOB_MIN_ENTROPY."""
    if len(value) < min_length:
        return False
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if text.count(" ") * MAX_SPACE_SHARE > len(text):
        return False  # prose and code: encodings have no spaces (random bytes: 1 in 256)
    if _HEX.fullmatch(text) or _BASE64.fullmatch(text):
        return True
    return shannon_entropy(value) >= BLOB_MIN_ENTROPY


def clip(text: str, limit: int = MAX_EVIDENCE_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unparse(node: ast.AST) -> str:
    try:
        return clip(ast.unparse(node))
    except (RecursionError, ValueError, AttributeError, TypeError):
        return f"<{type(node).__name__}>"


class Taint(enum.IntFlag):
    NONE = 0
    DECODED = 1
    NETWORK = 2
    CREDENTIAL = 4
    ENCODED = 8


_Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True, slots=True)
class _Binding:
    """Data of ``value`` (or the fixed ``taint``) flows into the names ``keys``."""

    keys: tuple[str, ...]
    value: ast.AST | None
    taint: Taint = Taint.NONE


@dataclass(frozen=True, slots=True)
class _CallKind:
    name: str | None  # the resolved dotted name, when there is one
    network: bool = False
    process: bool = False
    exec: bool = False
    decode: bool = False
    credential: bool = False
    command: str | None = None  # the folded command line of a process call
    write_path: ast.AST | None = None  # what a write-ish call writes to
    chmod: bool = False
    dup: bool = False
    registry: bool = False  # winreg: write_path is unused, the Run key is looked for
    pyarmor: bool = False


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, *test.comparators]
    names = {side.id for side in sides if isinstance(side, ast.Name)}
    values = {side.value for side in sides if isinstance(side, ast.Constant)}
    return names == {"__name__"} and values == {"__main__"}


def _key(node: ast.AST) -> str | None:
    """A flow key for a name or a dotted attribute of a name (``self.data``)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _canonical(name: str) -> str:
    head, _, rest = name.partition(".")
    if head in BUILTIN_MODULES and rest and rest != "__dict__":
        return rest
    if head in ("posix", "nt") and rest:
        return f"os.{rest}"
    if name == "importlib.__import__":
        return "__import__"
    return name


def _known(name: str) -> bool:
    return (
        name in NETWORK_CALLS
        or name in PROCESS_CALLS
        or name in DECODE_CALLS
        or name in EXEC_CALLS
        or name in CREDENTIAL_CALLS
        or name.startswith(PROCESS_PREFIXES)
    )


def _is_network(name: str) -> bool:
    if name in NETWORK_CALLS:
        return True
    parts = name.split(".")
    return (
        parts[0] in HTTP_CLIENT_MODULES and parts[-1] in HTTP_CLIENT_FUNCTIONS and len(parts) <= 3
    )


def _is_process(name: str) -> bool:
    return name in PROCESS_CALLS or name.startswith(PROCESS_PREFIXES)


def _normal_path(text: str) -> str:
    return text.replace("\\", "/").lower()


class _Module:
    """One parsed file: its names and scopes, what runs, and what flows where.

    Flow keys: a local variable is ``<scope id>:<name>`` (its function's own), a global
    is its name, an attribute is its dotted text (``self.data``, shared by the methods
    of a class), a local function's result is ``<name>()``, and a path written with
    network data is ``path:<folded path>``.
    """

    def __init__(self, tree: ast.Module, reach: Reach, depth: int) -> None:
        self.tree = tree
        self.reach = reach
        self.depth = depth
        self.aliases: dict[str, str] = {}
        self.star_modules: list[str] = []
        self.defs: dict[str, list[_Def]] = {}
        self.values: dict[str, str] = {}  # flow key -> the constant string it holds
        self.imports: list[tuple[int, str]] = []
        self.nodes: list[ast.AST] = []  # every node but expression contexts
        self.groups: dict[int, list[ast.AST]] = {}  # scope -> its nodes
        self.strings: list[tuple[ast.Constant, str | bytes]] = []
        self.pyarmor_imports: list[ast.stmt] = []
        self.mentions_environ = False
        self._scope_of: dict[int, int] = {}  # id(Name) -> id of its function (0: module)
        self._parent: dict[int, int] = {}
        self._locals: dict[int, set[str]] = {}
        self._globals: dict[int, set[str]] = {}
        self._qualified: dict[int, str | None] = {}
        self._folded: dict[int, str | None] = {}
        self._kinds: dict[int, _CallKind] = {}
        self._static: dict[int, tuple[Taint, tuple[str, ...]]] = {}
        self.taint: dict[str, Taint] = {}
        self.hits: dict[tuple[Rule, int, str], Hit] = {}
        self.reached_functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
        self._index()
        self._bind_names()

    # ------------------------------------------------------------ names and scopes

    def _index(self) -> None:
        """One pass over the tree: imports, definitions, string literals, and the scope
        of every node. A function's body is its own scope (its id); the module's is 0,
        and the body of a module-level ``if __name__ == "__main__":`` is MAIN_SCOPE."""
        stack: list[tuple[ast.AST, int]] = [(self.tree, 0)]
        groups = self.groups
        while stack:
            node, scope = stack.pop()
            groups.setdefault(scope, []).append(node)
            self.nodes.append(node)
            if isinstance(node, ast.Name):
                self._scope_of[id(node)] = scope
                if not isinstance(node.ctx, ast.Load) and scope > 0:
                    self._locals[scope].add(node.id)
                continue
            if isinstance(node, ast.Constant):
                if isinstance(node.value, str | bytes):
                    self.strings.append((node, node.value))
                continue
            if isinstance(node, ast.Attribute):
                if node.attr in ("environ", "environb"):
                    self.mentions_environ = True
            elif isinstance(node, _FUNCTIONS):
                self._index_function(node, scope, stack)
                continue
            elif isinstance(node, ast.ClassDef):
                self.defs.setdefault(node.name, []).append(node)
            elif isinstance(node, ast.Global | ast.Nonlocal):
                if scope > 0:
                    self._globals[scope].update(node.names)
            elif isinstance(node, ast.Import):
                self._note_import(node)
            elif isinstance(node, ast.ImportFrom):
                self._note_import_from(node)
            elif isinstance(node, ast.If) and scope == 0 and _is_main_guard(node):
                stack.extend((child, MAIN_SCOPE) for child in node.body)
                stack.extend((child, scope) for child in (node.test, *node.orelse))
                continue
            for field in node._fields:
                if field == "ctx":
                    continue
                value = getattr(node, field, None)
                if isinstance(value, ast.AST):
                    stack.append((value, scope))
                elif isinstance(value, list):
                    stack.extend((item, scope) for item in value if isinstance(item, ast.AST))

    def _index_function(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef,
        scope: int,
        stack: list[tuple[ast.AST, int]],
    ) -> None:
        self.defs.setdefault(node.name, []).append(node)
        inner = id(node)
        self._parent[inner] = scope
        arguments = node.args
        params = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        params += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
        self._locals[inner] = {param.arg for param in params}
        self._globals[inner] = set()
        if scope > 0:
            self._locals[scope].add(node.name)
        # Decorators and defaults run where the function is defined; the body, later.
        outer = [*node.decorator_list, *arguments.defaults]
        outer += [d for d in arguments.kw_defaults if d is not None]
        stack.extend((child, scope) for child in outer)
        stack.extend((child, inner) for child in node.body)

    def _note_import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imports.append((0, alias.name))
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                head = alias.name.partition(".")[0]
                self.aliases[head] = head
            if PYARMOR_MODULE.match(alias.name):
                self.pyarmor_imports.append(node)

    def _note_import_from(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        self.imports.append((node.level, module))
        names = {alias.name for alias in node.names}
        if (node.level == 0 and PYARMOR_MODULE.match(module)) or names & PYARMOR_NAMES:
            self.pyarmor_imports.append(node)
        for alias in node.names:
            if alias.name == "*":
                if node.level == 0 and module:
                    self.star_modules.append(module)
                continue
            if node.level == 0 and module:
                self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
            self.imports.append((node.level, f"{module}.{alias.name}" if module else alias.name))

    def _bind_names(self) -> None:
        """Aliases (``s = os.system``, ``m = __import__('os')``) and constant strings
        bound by simple assignments; two passes, for names used before their binding."""
        assignments = [
            node
            for node in self.nodes
            if isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ]
        for _ in range(2):
            for assign in assignments:
                target = assign.targets[0]
                assert isinstance(target, ast.Name)
                value = assign.value
                lookup = isinstance(value, ast.Name | ast.Attribute | ast.Subscript) or (
                    isinstance(value, ast.Call) and self._is_lookup(value)
                )
                if lookup and target.id not in self.aliases:
                    self._qualified.clear()
                    resolved = self.qualify(value)
                    if resolved is not None:
                        self.aliases[target.id] = resolved
                key = self.name_key(target)
                if key not in self.values:
                    self._folded.clear()
                    folded = self.fold(value)
                    if folded is not None and folded.strip(UNKNOWN):
                        self.values[key] = folded
        self._qualified.clear()
        self._folded.clear()

    def name_key(self, node: ast.Name) -> str:
        """The flow key of a variable: scoped to the function it is local to."""
        name = node.id
        scope = self._scope_of.get(id(node), 0)
        while scope > 0:
            if name in self._globals[scope]:
                return name
            if name in self._locals[scope]:
                return f"{scope}:{name}"
            scope = self._parent[scope]
        return name

    def key(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.name_key(node)
        return _key(node)

    def _is_lookup(self, call: ast.Call) -> bool:
        """``__import__('os')``, ``importlib.import_module(...)``, ``getattr(x, 'y')``."""
        name = self.qualify(call.func)
        return name in IMPORT_FUNCTIONS or name == "getattr"

    def qualify(self, node: ast.AST, depth: int = 0) -> str | None:
        """The dotted name ``node`` refers to (``sp.run`` -> ``subprocess.run``), or None."""
        key = id(node)
        if key in self._qualified:
            return self._qualified[key]
        result = self._qualify(node, depth) if depth <= MAX_FOLD_DEPTH else None
        self._qualified[key] = result
        return result

    def _qualify(self, node: ast.AST, depth: int) -> str | None:
        if isinstance(node, ast.Name):
            return self._qualify_name(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualify(node.value, depth + 1)
            return None if base is None else _canonical(f"{base}.{node.attr}")
        if isinstance(node, ast.Call):
            func = self.qualify(node.func, depth + 1)
            if func in IMPORT_FUNCTIONS and node.args:
                module = self.fold_exact(node.args[0])
                return module if module and module.replace(".", "").isidentifier() else None
            if func == "getattr" and len(node.args) >= 2:
                base = self.qualify(node.args[0], depth + 1)
                attr = self.fold_exact(node.args[1])
                if base is not None and attr:
                    return _canonical(f"{base}.{attr}")
            return None
        if isinstance(node, ast.Subscript):
            return self._qualify_subscript(node, depth)
        return None

    def _qualify_subscript(self, node: ast.Subscript, depth: int) -> str | None:
        """``sys.modules['os']``, ``globals()['exec']``, ``builtins.__dict__['eval']``."""
        key = self.fold_exact(node.slice)
        if not key:
            return None
        value = node.value
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id in ("globals", "locals", "vars")
            and not value.args
        ):
            return self._qualify_name(key)
        base = self.qualify(value, depth + 1)
        if base == "sys.modules":
            return key
        if base in BUILTIN_MODULES:
            return _canonical(key)
        if base is not None and base.endswith(".__dict__"):
            return _canonical(f"{base.removesuffix('.__dict__')}.{key}")
        return None

    def _qualify_name(self, name: str) -> str | None:
        if name in self.aliases:
            return _canonical(self.aliases[name])
        if name in self.defs:
            return None  # a local function shadows the builtin
        if name in BUILTIN_NAMES:
            return name
        for module in self.star_modules:
            candidate = _canonical(f"{module}.{name}")
            if _known(candidate):
                return candidate
        return None

    # ------------------------------------------------------------ strings

    def fold_exact(self, node: ast.AST) -> str | None:
        folded = self.fold(node)
        return None if folded is None or UNKNOWN in folded else folded

    def fold(self, node: ast.AST, depth: int = 0) -> str | None:
        """The string ``node`` evaluates to, with UNKNOWN for parts that are not constant
        and ``~`` for the home directory; None when nothing of it is known."""
        key = id(node)
        if key in self._folded:
            return self._folded[key]
        result = self._fold(node, depth) if depth <= MAX_FOLD_DEPTH else None
        self._folded[key] = result
        return result

    def _part(self, node: ast.AST, depth: int) -> str:
        folded = self.fold(node, depth + 1)
        return UNKNOWN if folded is None else folded

    def _fold(self, node: ast.AST, depth: int) -> str | None:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                return node.value
            if isinstance(node.value, bytes):
                return node.value.decode("latin-1")
            return None
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    parts.append(value.value)
                elif isinstance(value, ast.FormattedValue):
                    parts.append(self._part(value.value, depth))
            return "".join(parts)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Add):
                return self._joined([node.left, node.right], "", depth)
            if isinstance(node.op, ast.Div):
                return self._joined([node.left, node.right], "/", depth)
            if isinstance(node.op, ast.Mod):
                return self.fold(node.left, depth + 1)
            return None
        if isinstance(node, ast.Name):
            return self.values.get(self.name_key(node))
        if isinstance(node, ast.List | ast.Tuple):
            return self._joined(node.elts, " ", depth)
        if isinstance(node, ast.Subscript):
            return self._fold_subscript(node, depth)
        if isinstance(node, ast.Call):
            return self._fold_call(node, depth)
        return None

    def _joined(self, nodes: Sequence[ast.AST], separator: str, depth: int) -> str | None:
        parts = [self._part(node, depth) for node in nodes]
        if all(part == UNKNOWN for part in parts):
            return None
        return separator.join(parts)

    def _fold_subscript(self, node: ast.Subscript, depth: int) -> str | None:
        if isinstance(node.slice, ast.Slice) and _is_reversal(node.slice):
            inner = self.fold(node.value, depth + 1)
            return None if inner is None else inner[::-1]
        if (
            self.qualify(node.value) in ENV_MAPPINGS
            and self.fold_exact(node.slice) in HOME_VARIABLES
        ):
            return HOME
        return None

    def _fold_call(self, node: ast.Call, depth: int) -> str | None:
        name = self.qualify(node.func)
        args = node.args
        if name in HOME_CALLS:
            return HOME
        if name in ENV_GETTERS and args and self.fold_exact(args[0]) in HOME_VARIABLES:
            return HOME
        if name in PATH_JOINERS and args:
            return self._joined(args, "/", depth)
        if name in PATH_PASSTHROUGH and args:
            return self.fold(args[0], depth + 1)
        if name is not None or not isinstance(node.func, ast.Attribute):
            return None
        method = node.func.attr
        receiver = node.func.value
        if method == "join" and len(args) == 1 and isinstance(args[0], ast.List | ast.Tuple):
            separator = self.fold_exact(receiver)
            if separator is not None:
                return self._joined(args[0].elts, separator, depth)
        if method == "joinpath":
            return self._joined([receiver, *args], "/", depth)
        if method == "home" and self.qualify(receiver) in ("pathlib.Path", "pathlib.PosixPath"):
            return HOME
        if method in ("format", "expanduser", "resolve", "absolute", "encode", "decode", "strip"):
            return self.fold(receiver, depth + 1)
        return None

    # ------------------------------------------------------------ calls

    def kind(self, call: ast.Call) -> _CallKind:
        key = id(call)
        found = self._kinds.get(key)
        if found is None:
            found = self._kinds[key] = self._kind(call)
        return found

    def _kind(self, call: ast.Call) -> _CallKind:
        name = self.qualify(call.func)
        args = call.args
        if name is None:
            return self._method_kind(call)
        if name in ENV_GETTERS:
            return _CallKind(
                name, credential=_secret_key(self.fold_exact(args[0]) if args else None)
            )
        if _is_network(name):
            return _CallKind(name, network=True, write_path=_argument(call, COPY_CALLS.get(name)))
        if _is_process(name):
            line = _argument(call, 0, "args", "cmd")
            command = None if line is None else self.fold(line)
            return _CallKind(name, process=True, command=command, network=_download_tool(command))
        if name in EXEC_CALLS or name in CODE_OBJECT_CALLS:
            return _CallKind(name, exec=True)
        if name in DECODE_CALLS:
            return _CallKind(name, decode=True)
        if name == "codecs.decode":
            codec = _argument(call, 1, "encoding")
            return _CallKind(
                name, decode=codec is not None and _decoding_codec(self.fold_exact(codec))
            )
        if name in ("bytes", "bytearray") and args and isinstance(args[0], ast.List | ast.Tuple):
            ints = [e for e in args[0].elts if isinstance(e, ast.Constant)]
            return _CallKind(name, decode=len(ints) >= BYTE_LIST_MIN_LENGTH)
        if name in CREDENTIAL_CALLS or name.startswith(CREDENTIAL_PREFIXES):
            return _CallKind(name, credential=True)
        if name in OPEN_CALLS:
            writes = self._writes(_argument(call, 1, "mode"))
            return _CallKind(name, write_path=_argument(call, 0, "file") if writes else None)
        if name in COPY_CALLS:
            return _CallKind(name, write_path=_argument(call, COPY_CALLS[name], "dst"))
        if name == "os.open":
            flags = _argument(call, 1, "flags")
            named = {_key(node) for node in ast.walk(flags)} if flags is not None else set()
            writes = any(f"os.{flag}" in named for flag in ("O_WRONLY", "O_RDWR", "O_APPEND"))
            return _CallKind(name, write_path=args[0] if writes and args else None)
        if name in CHMOD_CALLS:
            return _CallKind(name, chmod=True)
        if name in DUP_CALLS:
            return _CallKind(name, dup=True)
        if name.startswith(("winreg.Set", "_winreg.Set")):
            return _CallKind(name, registry=True)
        if name.rpartition(".")[2] in PYARMOR_NAMES:
            return _CallKind(name, pyarmor=True)
        return _CallKind(name)

    def _writes(self, mode: ast.AST | None) -> bool:
        """An open() mode that writes (an unknown mode counts)."""
        if mode is None:
            return False
        text = self.fold_exact(mode)
        return text is None or any(flag in text for flag in "wax+")

    def _method_kind(self, call: ast.Call) -> _CallKind:
        """A call through something not resolved to a name: a method of a local object."""
        func = call.func
        if isinstance(func, ast.Name):
            return _CallKind(None, pyarmor=func.id in PYARMOR_NAMES)
        if not isinstance(func, ast.Attribute):
            return _CallKind(None)
        method, receiver, args = func.attr, func.value, call.args
        if method == "decode" and args:
            return _CallKind(None, decode=_decoding_codec(self.fold_exact(args[0])))
        if method in DECODING_METHODS:  # Fernet(key).decrypt(token), decompressobj()...
            return _CallKind(None, decode=True)
        if method == "join" and args:
            uses_chr = any(
                isinstance(node, ast.Name) and node.id == "chr" for node in ast.walk(args[0])
            )
            return _CallKind(None, decode=uses_chr)
        if method in PATH_WRITE_METHODS:
            return _CallKind(None, write_path=receiver)
        if method == "open" and self.qualify(receiver) is None:  # Path(...).open("a")
            writes = self._writes(_argument(call, 0, "mode"))
            return _CallKind(None, write_path=receiver if writes else None)
        if method == "chmod":
            return _CallKind(None, chmod=True)
        return _CallKind(None)

    # ------------------------------------------------------------ flow

    def static(self, expr: ast.AST) -> tuple[Taint, tuple[str, ...]]:
        """What ``expr`` carries whatever flows into it (decoded data, network data or a
        connection, a credential, an encoded literal), and the flow keys it reads."""
        key = id(expr)
        found = self._static.get(key)
        if found is None:
            found = self._static[key] = self._compute_static(expr)
        return found

    def _compute_static(self, expr: ast.AST) -> tuple[Taint, tuple[str, ...]]:
        found = Taint.NONE
        reads: list[str] = []
        skip: set[int] = set()
        for node in ast.walk(expr):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
                key = self.key(node)
                if key is not None:
                    reads.append(key)
                    if key in self.values:
                        found |= self._path_taint(self.values[key], reads)
                if self.qualify(node) in ENV_MAPPINGS:
                    found |= Taint.CREDENTIAL  # the whole environment
            elif isinstance(node, ast.Subscript):
                if self.qualify(node.value) in ENV_MAPPINGS:
                    skip.add(id(node.value))
                    if _secret_key(self.fold_exact(node.slice)):
                        found |= Taint.CREDENTIAL
                elif isinstance(node.slice, ast.Slice) and _is_reversal(node.slice):
                    found |= Taint.DECODED
            elif isinstance(node, ast.Call):
                found |= self._call_static(node, skip, reads)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
                if _escaped(node) or looks_encoded(node.value, ENCODED_LITERAL_MIN_LENGTH):
                    found |= Taint.ENCODED
                found |= self._path_taint(node.value, reads)
            elif isinstance(node, ast.BinOp | ast.JoinedStr):
                found |= self._path_taint(self.fold(node), reads)
        return found, tuple(dict.fromkeys(reads))

    def _call_static(self, node: ast.Call, skip: set[int], reads: list[str]) -> Taint:
        found = Taint.NONE
        kind = self.kind(node)
        if kind.decode:
            found |= Taint.DECODED
        if kind.network:
            found |= Taint.NETWORK
        if kind.credential:
            found |= Taint.CREDENTIAL
        func = node.func
        if isinstance(func, ast.Attribute) and self.qualify(func.value) in ENV_MAPPINGS:
            skip.add(id(func.value))  # os.environ.get("X") reads one variable
            if func.attr in ("setdefault", "pop") and node.args:
                if _secret_key(self.fold_exact(node.args[0])):
                    found |= Taint.CREDENTIAL
            elif func.attr in ("copy", "items", "keys", "values"):
                found |= Taint.CREDENTIAL
        elif isinstance(func, ast.Name) and func.id in self.defs:
            reads.append(f"{func.id}()")
        elif isinstance(func, ast.Attribute) and func.attr in self.defs:
            reads.append(f"{func.attr}()")  # a local method, by name
        if kind.name in PATH_JOINERS or kind.name in PATH_PASSTHROUGH:
            found |= self._path_taint(self.fold(node), reads)
        return found

    def _path_taint(self, value: str | bytes | None, reads: list[str]) -> Taint:
        """A credential file's path; reads the key of a path network data may be
        written to."""
        if not value or len(value) > MAX_PATH_LENGTH:
            return Taint.NONE
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if _DISTINCT_PATH.search(text):
            reads.append(f"path:{text}")
        if CREDENTIAL_HINT.search(text) and CREDENTIAL_PATH.search(_normal_path(text)):
            return Taint.CREDENTIAL
        return Taint.NONE

    def sources(self, expr: ast.AST) -> Taint:
        found, reads = self.static(expr)
        taint = self.taint
        if taint:
            for key in reads:
                found |= taint.get(key, Taint.NONE)
        return found

    def _path_keys(self, node: ast.AST) -> tuple[str, ...]:
        """Flow keys for a path: the variable holding it, and its folded text."""
        keys: list[str] = []
        key = self.key(node)
        if key is not None and self.qualify(node) is None:
            keys.append(key)
        folded = self.fold(node)
        if folded is not None and _DISTINCT_PATH.search(folded):
            keys.append(f"path:{folded}")
        return tuple(keys)

    # ------------------------------------------------------------ reach

    def executed_nodes(self) -> list[ast.AST]:
        """The nodes that run (see ``reach``); fills ``reached_functions``."""
        functions = {id(node): node for node in self.nodes if isinstance(node, _FUNCTIONS)}
        if self.reach == "all":
            self.reached_functions = list(functions.values())
            return self.nodes
        scopes = [0, MAIN_SCOPE] if self.reach == "script" else [0]
        reached: set[int] = set(scopes)
        nodes: list[ast.AST] = []
        while scopes:
            batch = [node for scope in scopes for node in self.groups.get(scope, ())]
            nodes.extend(batch)
            scopes = []
            for node in batch:
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    for definition in self.defs.get(node.id, ()):
                        scopes.extend(self._reach(definition, reached))
                elif isinstance(node, _FUNCTIONS) and self._runs_when_defined(node):
                    scopes.extend(self._reach(node, reached))
        return nodes

    def _runs_when_defined(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        """Decorated by a local function (which may call it) or by atexit.register."""
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if isinstance(target, ast.Name) and target.id in self.defs:
                return True
            if self.qualify(target) == "atexit.register":
                return True
        return False

    def _reach(self, definition: _Def, reached: set[int]) -> list[int]:
        """The scope of a function, or of every method of a class, once."""
        functions = (
            [definition]
            if isinstance(definition, _FUNCTIONS)
            else [node for node in definition.body if isinstance(node, _FUNCTIONS)]
        )
        scopes = []
        for function in functions:
            if id(function) not in reached:
                reached.add(id(function))
                self.reached_functions.append(function)
                scopes.append(id(function))
        return scopes

    # ------------------------------------------------------------ the report

    def report(self) -> Report:
        nodes = self.executed_nodes()
        calls = [node for node in nodes if isinstance(node, ast.Call)]
        if self._has_sources(calls):
            self._flow(nodes, calls)
        for call in calls:
            self._judge(call)
        self._literals()
        hits = sorted(self.hits.values(), key=lambda hit: (hit.line, hit.rule))
        return Report(tuple(hits[:MAX_HITS]), tuple(dict.fromkeys(self.imports)))

    def _has_sources(self, calls: list[ast.Call]) -> bool:
        """Whether anything in the code could start a chain (most files: nothing)."""
        if self.mentions_environ:
            return True
        for call in calls:
            kind = self.kind(call)
            if kind.decode or kind.network or kind.credential:
                return True
        reads: list[str] = []
        for node, value in self.strings:
            if self._path_taint(value, reads) or _escaped(node):
                return True
            if looks_encoded(value, ENCODED_LITERAL_MIN_LENGTH):
                return True
        return False

    def _bindings(self, nodes: list[ast.AST], calls: list[ast.Call]) -> list[_Binding]:
        """Every place data flows from an expression into a name."""
        bindings: list[_Binding] = []
        handles: dict[str, ast.AST] = {}  # file object key -> the path it was opened on
        for node in nodes:
            if isinstance(node, ast.Assign):
                keys = tuple(key for target in node.targets for key in self._targets(target))
                bindings.append(_Binding(keys, node.value))
                self._note_handle(node.value, keys, handles)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
                if node.value is not None:
                    bindings.append(_Binding(self._targets(node.target), node.value))
            elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
                bindings.append(_Binding(self._targets(node.target), node.iter))
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                keys = self._targets(node.optional_vars)
                bindings.append(_Binding(keys, node.context_expr))
                self._note_handle(node.context_expr, keys, handles)
        for function in self.reached_functions:
            for node in self.groups.get(id(function), ()):
                if isinstance(node, ast.Return | ast.Yield | ast.YieldFrom) and node.value:
                    bindings.append(_Binding((f"{function.name}()",), node.value))
        for call in calls:
            bindings.extend(self._call_bindings(call, handles))
        return bindings

    def _targets(self, node: ast.AST) -> tuple[str, ...]:
        """Flow keys an assignment target binds."""
        if isinstance(node, ast.Tuple | ast.List):
            return tuple(key for element in node.elts for key in self._targets(element))
        if isinstance(node, ast.Starred):
            return self._targets(node.value)
        if isinstance(node, ast.Subscript):  # d["k"] = v puts v into d
            node = node.value
        key = self.key(node)
        return () if key is None else (key,)

    def _note_handle(
        self, value: ast.AST, keys: tuple[str, ...], handles: dict[str, ast.AST]
    ) -> None:
        if isinstance(value, ast.Call):
            kind = self.kind(value)
            if kind.write_path is not None:
                for key in keys:
                    handles[key] = kind.write_path

    def _call_bindings(self, call: ast.Call, handles: dict[str, ast.AST]) -> list[_Binding]:
        bindings: list[_Binding] = []
        func = call.func
        kind = self.kind(call)
        # Arguments of a local function flow into its parameters.
        if isinstance(func, ast.Name):
            for definition in self.defs.get(func.id, ()):
                if isinstance(definition, _FUNCTIONS):
                    scope = id(definition)
                    arguments = definition.args
                    params = [a.arg for a in (*arguments.posonlyargs, *arguments.args)]
                    for param, arg in zip(params, call.args, strict=False):
                        bindings.append(_Binding((f"{scope}:{param}",), arg))
                    for keyword in call.keywords:
                        if keyword.arg is not None:
                            bindings.append(_Binding((f"{scope}:{keyword.arg}",), keyword.value))
        elif isinstance(func, ast.Attribute) and kind.name is None:
            values = [*call.args, *(keyword.value for keyword in call.keywords)]
            if func.attr in MUTATING_METHODS:
                keys = self._receiver_keys(func.value, handles)
                bindings.extend(_Binding(keys, value) for value in values)
            if func.attr in PATH_WRITE_METHODS and values:
                bindings.append(_Binding(self._path_keys(func.value), values[0]))
        # A download saved to a path makes that path network data.
        if kind.name in DOWNLOAD_TO_PATH:
            path = _argument(call, 1, "filename", "out")
            if path is not None:
                bindings.append(_Binding(self._path_keys(path), None, Taint.NETWORK))
        if kind.name == "shutil.copyfileobj" and len(call.args) >= 2:
            keys = self._receiver_keys(call.args[1], handles)
            bindings.append(_Binding(keys, call.args[0]))
        return bindings

    def _receiver_keys(self, receiver: ast.AST, handles: dict[str, ast.AST]) -> tuple[str, ...]:
        """Flow keys for what a method call writes into: the object, and for a file
        object the path it was opened on."""
        if isinstance(receiver, ast.Call):  # open(path, "wb").write(data)
            path = self.kind(receiver).write_path
            return () if path is None else self._path_keys(path)
        key = self.key(receiver)
        if key is None or self.qualify(receiver) is not None:
            return ()
        if key in handles:
            return (key, *self._path_keys(handles[key]))
        return (key,)

    def _flow(self, nodes: list[ast.AST], calls: list[ast.Call]) -> None:
        """Carry taint along the bindings until nothing changes (a worklist: a binding is
        looked at again only when a key it reads gains taint)."""
        bindings = self._bindings(nodes, calls)
        readers: dict[str, list[int]] = {}
        statics: list[Taint] = []
        reads_of: list[tuple[str, ...]] = []
        for index, binding in enumerate(bindings):
            static, reads = (
                self.static(binding.value) if binding.value is not None else (Taint.NONE, ())
            )
            statics.append(static | binding.taint)
            reads_of.append(reads)
            for key in reads:
                readers.setdefault(key, []).append(index)
        taint = self.taint
        work = [index for index, static in enumerate(statics) if static]
        steps = 0
        while work and steps < MAX_FLOW_STEPS:
            steps += 1
            index = work.pop()
            carried = statics[index]
            for key in reads_of[index]:
                carried |= taint.get(key, Taint.NONE)
            for key in bindings[index].keys:
                before = taint.get(key, Taint.NONE)
                if carried & ~before:
                    taint[key] = before | carried
                    work.extend(readers.get(key, ()))

    def _argument_taint(self, call: ast.Call) -> Taint:
        found = Taint.NONE
        for argument in (*call.args, *(keyword.value for keyword in call.keywords)):
            found |= self.sources(argument)
        return found

    # ------------------------------------------------------------ judging

    def _hit(self, rule: Rule, node: ast.AST, text: str | None = None) -> None:
        line = getattr(node, "lineno", 0)
        shown = text if text is not None else _unparse(node)
        self.hits.setdefault((rule, line, shown), Hit(rule, line, shown))

    def _judge(self, call: ast.Call) -> None:
        kind = self.kind(call)
        if kind.exec:
            self._judge_exec(call, kind)
        if kind.process:
            self._judge_process(call, kind)
        elif kind.network:
            self._hit(Rule.NETWORK, call)
            if self._argument_taint(call) & Taint.CREDENTIAL:
                self._hit(Rule.CREDENTIAL_SEND, call)
        elif (
            # a method of a connection: sock.send(...), session.post(...), conn.request(...)
            kind.name is None
            and self.taint
            and isinstance(call.func, ast.Attribute)
            and self.sources(call.func.value) & Taint.NETWORK
            and self._argument_taint(call) & Taint.CREDENTIAL
        ):
            self._hit(Rule.CREDENTIAL_SEND, call)
        if kind.chmod and self._argument_taint(call) & Taint.NETWORK:
            self._hit(Rule.DOWNLOAD_RUN, call)
        if kind.dup and self._argument_taint(call) & Taint.NETWORK:
            self._hit(Rule.REVERSE_SHELL, call)
        if kind.registry:
            texts = [self.fold(argument) or "" for argument in call.args]
            if any("currentversion\\run" in text.lower() for text in texts):
                self._hit(Rule.PERSISTENCE, call)
        elif kind.write_path is not None:
            self._judge_write(call, kind.write_path)
        if kind.pyarmor:
            self._hit(Rule.PYARMOR, call)
        if kind.name == "marshal.loads" and call.args:
            argument = call.args[0]
            literal = any(
                isinstance(node, ast.Constant)
                and isinstance(node.value, bytes | str)
                and len(node.value) >= MARSHAL_LITERAL_MIN_LENGTH
                for node in ast.walk(argument)
            )
            if literal or self.sources(argument) & Taint.ENCODED:
                self._hit(Rule.MARSHAL_BLOB, call)

    def _judge_exec(self, call: ast.Call, kind: _CallKind) -> None:
        code = _argument(call, 0, "source", "object", "code")
        if code is None:
            return
        # compile() only builds a code object: what runs it (exec, eval) is the sink.
        carried = Taint.NONE if kind.name == "compile" else self.sources(code)
        if carried & (Taint.DECODED | Taint.ENCODED):
            self._hit(Rule.DECODE_EXEC, call)
        if carried & Taint.ENCODED:
            self._hit(Rule.ENCODED_EXEC, call)
        if carried & Taint.NETWORK:
            self._hit(Rule.DOWNLOAD_EXEC, call)
        if kind.name not in SOURCE_EXEC_CALLS or self.depth >= MAX_NESTED_EXEC_DEPTH:
            return
        text = self.fold_exact(code)
        if text and len(text) <= MAX_NESTED_EXEC_SIZE:
            nested = _analyse(text, "all", self.depth + 1)
            for hit in nested.hits:
                self._hit(hit.rule, call, clip(f"{_unparse(call)} runs {hit.text}"))

    def _judge_process(self, call: ast.Call, kind: _CallKind) -> None:
        if self._python_c(call):
            return  # the code it runs was judged whole
        command = (kind.command or "").replace(UNKNOWN, " ")
        chained = False
        downloads = _download_tool(command)
        if downloads and RUN_AFTER_DOWNLOAD.search(command):
            self._hit(Rule.DOWNLOAD_EXEC, call)
            chained = True
        elif downloads and MAKE_EXECUTABLE.search(command):
            self._hit(Rule.DOWNLOAD_RUN, call)
            chained = True
        if REVERSE_SHELL_COMMAND.search(command):
            self._hit(Rule.REVERSE_SHELL, call)
            chained = True
        if (
            DECODE_COMMAND.search(command) and EXEC_COMMAND.search(command)
        ) or POWERSHELL_ENCODED.search(command):
            self._hit(Rule.DECODE_EXEC, call)
            chained = True
        normal = _normal_path(command)
        if PERSISTENCE_PATH.search(normal) and WRITE_COMMAND.search(normal):
            self._hit(Rule.PERSISTENCE, call)
            chained = True
        if downloads:
            self._hit(Rule.NETWORK, call)
        carried = self._argument_taint(call)
        if downloads and carried & Taint.CREDENTIAL:  # curl -d "$TOKEN" ...
            self._hit(Rule.CREDENTIAL_SEND, call)
            chained = True
        if carried & Taint.NETWORK:
            streams = [kw.value for kw in call.keywords if kw.arg in ("stdin", "stdout", "stderr")]
            if any(self.sources(stream) & Taint.NETWORK for stream in streams):
                self._hit(Rule.REVERSE_SHELL, call)
            else:
                self._hit(Rule.DOWNLOAD_RUN, call)
            chained = True
        if carried & Taint.DECODED:
            self._hit(Rule.DECODE_EXEC, call)
            chained = True
        if not chained:
            self._hit(Rule.PROCESS, call)

    def _python_c(self, call: ast.Call) -> bool:
        """``[python, "-c", CODE]``: CODE is analysed like exec's argument; True when it
        holds a chain."""
        line = _argument(call, 0, "args")
        if not isinstance(line, ast.List | ast.Tuple) or self.depth >= MAX_NESTED_EXEC_DEPTH:
            return False
        items = line.elts
        chained = False
        for flag, code in itertools.pairwise(items):
            if self.fold_exact(flag) != "-c":
                continue
            text = self.fold_exact(code)
            if text and len(text) <= MAX_NESTED_EXEC_SIZE:
                for hit in _analyse(text, "all", self.depth + 1).hits:
                    self._hit(hit.rule, call, clip(f"{_unparse(call)} runs {hit.text}"))
                    chained |= hit.rule in CHAINS
        return chained

    def _judge_write(self, call: ast.Call, path: ast.AST) -> None:
        folded = self.fold(path)
        if folded is None:
            return
        normal = _normal_path(folded)
        if PERSISTENCE_PATH.search(normal) or PYTHON_STARTUP_PATH.search(normal):
            self._hit(Rule.PERSISTENCE, call)
        elif normal.startswith(HOME) or "/~" in normal:
            self._hit(Rule.HOME_WRITE, call)

    def _literals(self) -> None:
        """Encoded blobs and PyArmor imports, anywhere in the file."""
        for node, value in self.strings:
            if looks_encoded(value, BLOB_MIN_LENGTH):
                entropy = shannon_entropy(value)
                text = f"{value[:48]!r}… ({len(value)} characters, {entropy:.2f} bits each)"
                self._hit(Rule.ENCODED_BLOB, node, text)
        for statement in self.pyarmor_imports:
            self._hit(Rule.PYARMOR, statement)


def _escaped(node: ast.Constant) -> bool:
    """A one-line literal written mostly as escapes (``"\\x69\\x6d..."``): its source is
    ESCAPED_RATIO times longer than its value."""
    value = node.value
    if not isinstance(value, str | bytes) or len(value) < ESCAPED_LITERAL_MIN_LENGTH:
        return False
    if node.end_lineno != node.lineno or node.end_col_offset is None:
        return False
    return node.end_col_offset - node.col_offset >= ESCAPED_RATIO * len(value)


def _argument(call: ast.Call, index: int | None, *names: str) -> ast.expr | None:
    if index is not None and len(call.args) > index:
        argument = call.args[index]
        return None if isinstance(argument, ast.Starred) else argument
    for keyword in call.keywords:
        if keyword.arg in names:
            return keyword.value
    return None


def _is_reversal(node: ast.Slice) -> bool:
    step = node.step
    return (
        node.lower is None
        and node.upper is None
        and isinstance(step, ast.UnaryOp)
        and isinstance(step.op, ast.USub)
        and isinstance(step.operand, ast.Constant)
        and step.operand.value == 1
    )


def _secret_key(name: str | None) -> bool:
    """An environment variable name that looks like a secret (PROXY, CC or a name
    computed at run time do not)."""
    return name is not None and SECRET_ENV_NAME.search(name) is not None


def _decoding_codec(codec: str | None) -> bool:
    """A codec that is not a text encoding (rot13, base64, zlib, ...)."""
    return codec is not None and codec.lower().replace("-", "_") in DECODING_CODECS


def _download_tool(command: str | None) -> bool:
    return bool(command) and DOWNLOAD_TOOL.search(command or "") is not None
