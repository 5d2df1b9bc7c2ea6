"""Model configs inside packages that make a loader import and call things by name:
Hydra/OmegaConf ``_target_`` strings (with ``_partial_``/``_args_``) in YAML and JSON
members, in NeMo ``.nemo`` tars (``model_config.yaml``) and in the ``__metadata__`` of
safetensors headers (the January 2026 NeMo, Uni2TS and FlexTok disclosures: a config
``_target_`` is ``hydra.utils.instantiate``-d on load); ``!!python/...`` YAML tags;
``${oc.env:...}``/``${eval:...}`` interpolations; and the safetensors header itself.

A config is parsed only when its bytes mention ``_target_`` or could spell it some
other way (an escape, a byte-order mark); YAML only with a safe loader (application tags
such as lm-eval's ``!function`` read as plain data), within size, nesting and
per-artifact limits, past which the text is searched by pattern instead. Nothing is
instantiated, imported or evaluated. Safetensors files are judged by their header
alone: the tensor bytes are never read.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from quarantine.artifact import Artifact, ArtifactError, Member, MiB
from quarantine.checks.modelfiles import (
    DOTTED_NAME,
    MAX_NESTED_ARCHIVE_SIZE,
    Problem,
    clip,
    danger,
    file_members,
    is_own,
    listing,
    own_top_levels,
    per_artifact,
    read_prefix,
    tar_entries,
    where,
)
from quarantine.findings import CheckContext, Finding, Severity

CONFIG_DANGEROUS_TARGET: Final = "config-dangerous-target"
CONFIG_UNKNOWN_TARGET: Final = "config-unknown-target"
CONFIG_INTERPOLATION: Final = "config-interpolation"
SAFETENSORS_HEADER_INVALID: Final = "safetensors-header-invalid"

CONFIG_SUFFIXES: Final = (".yaml", ".yml", ".json")
NEMO_SUFFIX: Final = ".nemo"
SAFETENSORS_SUFFIX: Final = ".safetensors"

# A config is parsed whole up to this size; a bigger one is searched chunk by chunk
# for the markers below, and a `_target_` in it is reported unparsed.
MAX_CONFIG_SIZE: Final = 16 * MiB
MAX_CONFIG_DOCUMENTS: Final = 100
# PyYAML builds Python objects at well under 1 MB/s (even with libyaml), so configs that
# mention `_target_` are parsed up to these many characters, each and per artifact; the
# rest are read by pattern. Hydra configs are a few kilobytes.
MAX_YAML_SIZE: Final = 1 * MiB
MAX_YAML_TOTAL: Final = 4 * MiB
MAX_YAML_DEPTH: Final = 200
MAX_CONFIG_NODES: Final = 500_000
OVERLAP: Final = 256  # bytes kept between chunks of an unparsed config
# The safetensors format's own limit on its JSON header.
MAX_SAFETENSORS_HEADER: Final = 100_000_000
HEADER_READ: Final = 1 * MiB  # read first; more only for a header that is bigger

TARGET_KEY: Final = "_target_"
# Bytes that make a config worth a look; most configs hold none of them. A config is
# parsed when it says ``_target_``, or may spell it otherwise: an escape of one of its
# characters (``"\x5ftarget_"``, ``"\u005f..."``; also of ``$`` and ``{``), a YAML
# backslash-newline continuation, a percent-escape in a tag, or a byte-order mark.
_MARKERS: Final = (b"${", b"python/")
_ESCAPES: Final = re.compile(
    rb"\\(?:(?:x|u00|U000000)(?:5[fF]|74|61|72|67|65|24|7[bB])|(?:"
    + b"|".join(b"(?<=" + re.escape(TARGET_KEY[:end].encode()) + rb"\\)" for end in range(1, 8))
    + rb")\r?\n)"  # a line continuation inside "_target_"
)
_ESCAPED_INTERPOLATION: Final = re.compile(rb"\\(?:x|u00|U000000)(?:24|7[bB])")
_ANY_ESCAPE: Final = re.compile(rb"\\(?:x|u00|U000000|\r?\n)")  # a cheaper first look
# Bytes that make ``_target_`` part of a longer name (``pool_target_x``) when next to it.
_NAME_BYTES: Final = frozenset(
    bytes([byte]) for byte in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
)
_ESCAPED_TAG: Final = re.compile(rb"![^\s!]*%[0-9a-fA-F]{2}")
_BOM_PREFIXES: Final = (b"\x00\x00\xfe\xff", b"\xff\xfe", b"\xfe\xff")  # UTF-32BE/LE, UTF-16
_BOMS: Final = (
    (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"), (b"\xef\xbb\xbf", "utf-8-sig"),
)  # fmt: skip

# Where a config's callables may come from without review: the package's own modules
# and these (dotted prefixes, matched at segment boundaries). Loaders and indirections
# inside them (torch.load, hydra.utils.instantiate...) are denied before this applies.
TARGET_ALLOWLIST: Final = frozenset(
    {
        "torch", "torchvision", "torchaudio", "torchtext", "torchmetrics", "torchdata",
        "lightning", "pytorch_lightning", "lightning_fabric",
        "numpy", "scipy", "sklearn", "pandas",
        "transformers", "tokenizers", "timm", "einops", "diffusers", "peft", "accelerate",
        "nemo", "megatron", "apex",
        "jax", "flax", "optax", "tensorflow", "keras",
        "functools.partial", "collections.OrderedDict", "math", "datetime.timedelta",
        "pathlib.Path", "builtins.dict", "builtins.list", "builtins.tuple", "builtins.set",
        "builtins.int", "builtins.float", "builtins.str", "builtins.bool", "builtins.range",
    }
)  # fmt: skip

# OmegaConf resolvers that read the environment or evaluate code (``eval`` is the name
# applications conventionally register Python's eval under).
INTERPOLATION_RESOLVERS: Final = ("oc.env", "env", "eval", "oc.eval", "exec", "python", "shell")
_INTERPOLATION: Final = re.compile(
    r"\$\{\s*(" + "|".join(re.escape(name) for name in INTERPOLATION_RESOLVERS) + r")\s*:"
)
_INTERPOLATION_BYTES: Final = re.compile(_INTERPOLATION.pattern.encode())
# The YAML Python tags that name something to import (unsafe loaders import and call it).
PYTHON_TAG_KINDS: Final = ("object/apply", "object/new", "object", "name", "module")
_PYTHON_TAG_BYTES: Final = re.compile(
    rb"(?:!!|tag:yaml\.org,2002:)python/(object/apply|object/new|object|name|module)"
    rb"\s*:\s*([^\s\[\]{},'\"]+)"
)
_TARGET_TEXT: Final = re.compile(r"""["']?_target_["']?\s*[:=]\s*["']?([^\s"',}#]+)""")
_TARGET_TEXT_BYTES: Final = re.compile(_TARGET_TEXT.pattern.encode())

# Safetensors dtypes and their width in bits.
SAFETENSORS_DTYPE_BITS: Final = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip


# ---------------------------------------------------------------- YAML, safely


class _ConfigLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader, reading any application tag (``!function``, ``!!python/...``)
    as the plain scalar, list or mapping it tags, instead of failing on it; the Python
    tags it meets (however they were spelled) are kept in ``python_tags``."""

    python_tags: list[str]


def _untagged(loader: Any, suffix: str, node: Any) -> Any:
    if str(node.tag).startswith(PYTHON_TAG_PREFIX):
        loader.python_tags.append(str(node.tag).removeprefix(PYTHON_TAG_PREFIX))
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)


_ConfigLoader.add_multi_constructor("", _untagged)
PYTHON_TAG_PREFIX: Final = "tag:yaml.org,2002:python/"


# ---------------------------------------------------------------- the scan


@dataclass(frozen=True, slots=True)
class Target:
    """A callable a config names: ``_target_`` (at ``key``) or a YAML python tag."""

    member: str
    inner: str | None
    key: str  # where: "model.encoder._target_", "!!python/object/apply", "__metadata__..."
    value: str
    extras: str = ""  # "_partial_", "_args_" beside it

    def describe(self) -> str:
        extras = f" ({self.extras})" if self.extras else ""
        return f"{where(self.member, self.inner)} {self.key}: {self.value}{extras}"


@dataclass(frozen=True, slots=True)
class Interpolation:
    member: str
    inner: str | None
    at: str  # "line 3", or the key path of a parsed value
    text: str


@dataclass(frozen=True, slots=True)
class HeaderProblem:
    member: str
    reason: str


@dataclass
class ConfigScan:
    targets: list[Target] = field(default_factory=list)
    interpolations: list[Interpolation] = field(default_factory=list)
    headers: list[HeaderProblem] = field(default_factory=list)
    own: frozenset[str] = frozenset()
    error: ArtifactError | None = None
    yaml_budget: int = MAX_YAML_TOTAL  # characters of YAML still to be parsed


@per_artifact
def scan(artifact: Artifact) -> ConfigScan:
    """Every config, .nemo config and safetensors header in the artifact (once)."""
    result = ConfigScan(own=own_top_levels(artifact))
    for member in file_members(artifact):
        lower = member.name.lower()
        try:
            if lower.endswith(CONFIG_SUFFIXES):
                _scan_config_member(artifact, member, result)
            elif lower.endswith(SAFETENSORS_SUFFIX):
                _scan_safetensors(artifact, member, result)
            elif lower.endswith(NEMO_SUFFIX) and member.size <= MAX_NESTED_ARCHIVE_SIZE:
                _scan_nemo(artifact, member, result)
        except ArtifactError as exc:
            result.error = result.error or exc
    return result


def _scan_config_member(artifact: Artifact, member: Member, result: ConfigScan) -> None:
    if member.size <= MAX_CONFIG_SIZE:
        data = read_prefix(artifact, member, MAX_CONFIG_SIZE)
        _scan_config(member.name, None, data, result)
        return
    # Too big to parse: look for the markers chunk by chunk, with an overlap.
    tail, lines, target = b"", 1, False
    for chunk in artifact.stream(member.name):
        window = tail + chunk
        target = target or _worth_parsing(window)
        for match in _TARGET_TEXT_BYTES.finditer(window):
            if match.end() > len(tail):
                value = match[1].decode("utf-8", "replace")
                result.targets.append(Target(member.name, None, "_target_ (unparsed text)", value))
        for match in _INTERPOLATION_BYTES.finditer(window):
            if match.end() > len(tail):  # not already found in the previous window
                line = lines + window.count(b"\n", 0, match.start())
                snippet = _snippet_bytes(window, match)
                result.interpolations.append(
                    Interpolation(member.name, None, f"line {line}", snippet)
                )
        tail = window[-OVERLAP:]
        lines += window.count(b"\n") - tail.count(b"\n")
    if target:
        result.targets.append(
            Target(
                member.name,
                None,
                "(unparsed)",
                f"{TARGET_KEY} in a config over {MAX_CONFIG_SIZE} bytes",
            )
        )


def _scan_nemo(artifact: Artifact, member: Member, result: ConfigScan) -> None:
    budget = max(member.size * 200, 64 * MiB)
    entries = tar_entries(
        artifact.stream(member.name),
        lambda name: name.lower().endswith(CONFIG_SUFFIXES),
        MAX_CONFIG_SIZE,
        budget,
    )
    for entry in entries:
        if not isinstance(entry, Problem):  # an unreadable .nemo is pickle-unverified's
            _scan_config(member.name, entry.name, entry.data, result)


def _scan_config(member: str, inner: str | None, data: bytes, result: ConfigScan) -> None:
    if data.startswith(_BOM_PREFIXES):  # UTF-16/32: searched as UTF-8 like the rest
        data = _decode(data).encode("utf-8", "replace")
    parse = _worth_parsing(data)
    if not parse and not any(marker in data for marker in _MARKERS):
        return
    name = (inner or member).lower()
    for found_at in _INTERPOLATION_BYTES.finditer(data):
        line = data.count(b"\n", 0, found_at.start()) + 1
        result.interpolations.append(
            Interpolation(member, inner, f"line {line}", _snippet_bytes(data, found_at))
        )
    found = []
    if b"python/" in data:
        found += [
            Target(
                member, inner, f"!!python/{match[1].decode()}", match[2].decode("utf-8", "replace")
            )
            for match in _PYTHON_TAG_BYTES.finditer(data)
        ]
    if not parse:
        result.targets.extend(found)
        return
    text = data.decode("utf-8", "replace")
    try:
        documents, tags = _parse(text, name, result)
    except Exception:  # YAMLError, ValueError, RecursionError...: read it as text instead
        found += [
            Target(member, inner, "_target_ (unparsed text)", match[1])
            for match in _TARGET_TEXT.finditer(text)
        ]
    else:
        for tag in tags:  # however the tag was spelled (%-escapes, the long form)
            kind, _, value = tag.partition(":")
            if kind in PYTHON_TAG_KINDS:
                found.append(Target(member, inner, f"!!python/{kind}", value))
        # Strings are searched for interpolations an escape spelled (the text had none).
        strings = b"\\" in data and _ESCAPED_INTERPOLATION.search(data) is not None
        for document in documents:
            _walk_tree(member, inner, document, "", found, result, strings=strings)
    result.targets.extend(dict.fromkeys(found))  # a tag seen both ways, once


def _worth_parsing(data: bytes) -> bool:
    """Whether the config says ``_target_`` (as a word, not inside ``pool_target_x``)
    or may spell it some other way. Cheap substring tests run before each pattern."""
    return (
        _has_target_word(data)
        or (_ANY_ESCAPE.search(data) is not None and _ESCAPES.search(data) is not None)
        or (b"%" in data and b"!" in data and _ESCAPED_TAG.search(data) is not None)
    )


def _has_target_word(data: bytes) -> bool:
    at = data.find(b"_target_")
    while at >= 0:
        if data[at - 1 : at] not in _NAME_BYTES and data[at + 8 : at + 9] not in _NAME_BYTES:
            return True
        at = data.find(b"_target_", at + 1)
    return False


def _decode(data: bytes) -> str:
    """Config text: UTF-8 unless a byte-order mark says otherwise (PyYAML and json
    both follow one)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, "replace")
    return data.decode("utf-8", "replace")


def _parse(text: str, name: str, result: ConfigScan) -> tuple[list[object], list[str]]:
    """The documents of a JSON or YAML text, and the Python tags the YAML used. YAML is
    refused (ValueError) past MAX_YAML_SIZE, past the artifact's YAML budget, or nested
    deeper than MAX_YAML_DEPTH (checked on libyaml's event stream first: the C loader's
    composer recurses without a limit and crashes the interpreter on deep nesting)."""
    if name.endswith(".json"):
        return [json.loads(text)], []
    if len(text) > min(MAX_YAML_SIZE, result.yaml_budget):
        raise ValueError("over the YAML parsing limits")
    result.yaml_budget -= len(text)
    depth = 0
    for event in yaml.parse(text, Loader=_ConfigLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise ValueError(f"nested deeper than {MAX_YAML_DEPTH}")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    loader = _ConfigLoader(text)
    loader.python_tags = []
    documents: list[object] = []
    try:
        while len(documents) < MAX_CONFIG_DOCUMENTS and loader.check_data():
            documents.append(loader.get_data())
    finally:
        loader.dispose()
    return documents, loader.python_tags


def _walk_tree(
    member: str,
    inner: str | None,
    tree: object,
    root: str,
    found: list[Target],
    result: ConfigScan,
    *,
    strings: bool,
) -> None:
    """Every mapping with a ``_target_`` key in a parsed config, and if ``strings``,
    interpolations in its strings. Shared nodes, as YAML aliases make, are visited once."""
    stack: list[tuple[object, str]] = [(tree, root)]
    seen: set[int] = set()
    nodes = 0
    while stack and nodes < MAX_CONFIG_NODES:
        node, path = stack.pop()
        nodes += 1
        if isinstance(node, str):
            if strings and "${" in node:
                for match in _INTERPOLATION.finditer(node):
                    snippet = _snippet(node, match)
                    if not any(i.text == snippet for i in result.interpolations):
                        result.interpolations.append(Interpolation(member, inner, path, snippet))
            continue
        if not isinstance(node, dict | list) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, list):
            stack.extend(
                (value, f"{path}[{index}]")
                for index, value in enumerate(node)
                if strings or isinstance(value, dict | list)
            )
            continue
        if TARGET_KEY in node:
            extras = ", ".join(
                f"{key}: {clip(repr(node[key]))[:80]}"
                for key in ("_partial_", "_args_")
                if key in node
            )
            key = f"{path}.{TARGET_KEY}" if path else TARGET_KEY
            found.append(Target(member, inner, key, _as_target(node[TARGET_KEY]), extras))
        stack.extend(
            (value, f"{path}.{key}" if path else str(key))
            for key, value in node.items()
            if strings or isinstance(value, dict | list)
        )


def _as_target(value: object) -> str:
    return value if isinstance(value, str) else f"(a {type(value).__name__}: {value!r:.80})"


def _snippet_bytes(data: bytes, match: re.Match[bytes]) -> str:
    end = data.find(b"}", match.end(), match.end() + 200)
    return data[match.start() : end + 1 if end >= 0 else match.end()].decode("utf-8", "replace")


def _snippet(text: str, match: re.Match[str]) -> str:
    """The interpolation from ``${`` to its ``}`` (or what fits of it)."""
    end = text.find("}", match.end(), match.end() + 200)
    return text[match.start() : end + 1 if end >= 0 else match.end()]


# ---------------------------------------------------------------- safetensors


def _scan_safetensors(artifact: Artifact, member: Member, result: ConfigScan) -> None:
    problem = None
    # Usually the header fits in the first read (a second read of a tar member rewinds).
    data = read_prefix(artifact, member, min(member.size, HEADER_READ))
    if len(data) < 8:
        problem = f"{member.size} bytes: no 8-byte header length"
    else:
        (length,) = struct.unpack_from("<Q", data)
        if length > MAX_SAFETENSORS_HEADER:
            problem = f"header length {length} is over {MAX_SAFETENSORS_HEADER} bytes"
        elif 8 + length > member.size:
            problem = f"header length {length} runs past the {member.size}-byte file"
        else:
            if 8 + length > len(data):
                data = read_prefix(artifact, member, 8 + length)
            header = data[8 : 8 + length]
            problem = _header_problem(header, member.size - 8 - length, member.name, result)
    if problem is not None:
        result.headers.append(HeaderProblem(member.name, problem))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        duplicated = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"duplicate keys {duplicated[:5]}")
    return dict(pairs)


def _header_problem(header: bytes, buffer: int, member: str, result: ConfigScan) -> str | None:
    """Why a safetensors header is invalid, or None; ``_target_`` strings and
    interpolations in its ``__metadata__`` go into ``result``."""
    if not header.startswith(b"{"):
        return "the header is not a JSON object"
    try:
        parsed = json.loads(header.decode("utf-8"), object_pairs_hook=_unique_keys)
    except Exception as exc:  # UnicodeDecodeError, JSONDecodeError, duplicates...
        return f"the header is not valid JSON: {type(exc).__name__}: {exc}"
    if not isinstance(parsed, dict):
        return "the header is not a JSON object"
    metadata = parsed.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
            isinstance(value, str) for value in metadata.values()
        ):
            return "__metadata__ is not a string-to-string mapping"
        _scan_metadata(member, metadata, result)
    spans = []
    for name, info in parsed.items():
        if not isinstance(info, dict):
            return f"tensor {name!r} is not an object"
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in SAFETENSORS_DTYPE_BITS:
            return f"tensor {name!r} has unknown dtype {dtype!r}"
        if not isinstance(shape, list) or not isinstance(offsets, list):
            return f"tensor {name!r} has no shape or data_offsets list"
        if not _is_ints(shape, None) or not _is_ints(offsets, 2):
            return f"tensor {name!r} has an invalid shape or data_offsets"
        begin, end = offsets
        elements = 1
        for dimension in shape:
            elements *= dimension
        bits = elements * SAFETENSORS_DTYPE_BITS[dtype]
        if end < begin or bits % 8 or end - begin != bits // 8:
            return f"tensor {name!r} spans {begin}..{end}, not its {bits / 8:g} bytes"
        spans.append((begin, end, name))
    expected = 0
    for begin, end, name in sorted(spans):
        if begin != expected:
            what = "overlaps the tensor before it" if begin < expected else "leaves a gap"
            return f"tensor {name!r} at {begin}..{end} {what}"
        expected = end
    if expected != buffer:
        return f"the tensors cover {expected} bytes of a {buffer}-byte data buffer"
    return None


def _is_ints(value: list[object], count: int | None) -> bool:
    return (count is None or len(value) == count) and all(
        isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in value
    )


def _scan_metadata(member: str, metadata: dict[str, str], result: ConfigScan) -> None:
    """``__metadata__`` itself may be a Hydra mapping, and its values JSON/YAML texts."""
    found: list[Target] = []
    _walk_tree(member, None, metadata, "__metadata__", found, result, strings=False)
    result.targets.extend(found)
    for key, value in metadata.items():
        kind = ".json" if value.lstrip().startswith(("{", "[")) else ".yaml"
        _scan_config(member, f"__metadata__[{key!r}]{kind}", value.encode(), result)


# ---------------------------------------------------------------- the checks


def _judged(artifact: Artifact) -> tuple[ConfigScan, list[tuple[Target, str | None]]]:
    result = scan(artifact)
    return result, [(target, danger(target.value)) for target in result.targets]


def config_dangerous_target(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A model config (YAML/JSON member, .nemo model_config.yaml, safetensors
    __metadata__) names a ``_target_`` (or a ``!!python/`` YAML tag) that runs commands
    or code when instantiated: os.system, subprocess, builtins eval/exec, importlib,
    pickle loaders, Hydra's own get_method/instantiate, or a standard-library module
    reached through an attribute path (``logging.os.system``).

    Critical: Hydra's ``instantiate`` imports and calls the target on load.
    """
    result, judged = _judged(artifact)
    if result.error is not None:
        raise result.error  # reported once, as archive-unreadable
    flagged: dict[str, list[str]] = {}
    for target, reason in judged:
        if reason is not None:
            flagged.setdefault(target.member, []).append(f"{target.describe()} ({reason})")
    return [
        Finding(
            CONFIG_DANGEROUS_TARGET,
            Severity.CRITICAL,
            "A model config in this file names a target that runs code when instantiated.",
            listing(items),
            member,
        )
        for member, items in flagged.items()
    ]


def config_unknown_target(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A model config names a ``_target_`` (or ``!!python/`` tag) outside the package's
    own modules and TARGET_ALLOWLIST (torch, numpy, lightning, transformers, ...): an
    unknown module, a target that is not a plain dotted name (an interpolation decides
    it at load time), or a ``_target_`` in a config too large to parse.

    Medium (held for review); dangerous targets are config-dangerous-target's.
    """
    result, judged = _judged(artifact)
    flagged: dict[str, list[str]] = {}
    for target, reason in judged:
        if reason is None and not _allowed(target.value, result.own):
            flagged.setdefault(target.member, []).append(target.describe())
    return [
        Finding(
            CONFIG_UNKNOWN_TARGET,
            Severity.MEDIUM,
            "A model config in this file names a target outside this package and the "
            "allowlist, which Hydra would import and call.",
            listing(items),
            member,
        )
        for member, items in flagged.items()
    ]


def _allowed(value: str, own: frozenset[str]) -> bool:
    if not DOTTED_NAME.fullmatch(value):
        return False
    if is_own(value, own):
        return True
    segments = value.split(".")
    return any(".".join(segments[:end]) in TARGET_ALLOWLIST for end in range(1, len(segments) + 1))


def config_interpolation(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A model config uses an OmegaConf interpolation that reads the environment or
    evaluates code when resolved: ``${oc.env:...}``, ``${eval:...}`` and the other
    INTERPOLATION_RESOLVERS.

    Medium: a config shipped in a package has no business reading secrets from the
    environment or evaluating expressions.
    """
    result = scan(artifact)
    flagged: dict[str, list[str]] = {}
    for found in result.interpolations:
        flagged.setdefault(found.member, []).append(
            f"{where(found.member, found.inner)} {found.at}: {found.text}"
        )
    return [
        Finding(
            CONFIG_INTERPOLATION,
            Severity.MEDIUM,
            "A config in this file reads the environment or evaluates code through an "
            "interpolation.",
            listing(items),
            member,
        )
        for member, items in flagged.items()
    ]


def safetensors_header_invalid(artifact: Artifact, context: CheckContext) -> list[Finding]:
    """A ``.safetensors`` member's header is not what the format allows: its 8-byte
    little-endian length over 100 MB or past the file, not a JSON object (or with
    duplicate keys), ``__metadata__`` not string-to-string, or tensor entries whose
    dtype, shape and data_offsets do not tile the data buffer exactly, in order, with
    no gap or overlap.

    High: loaders disagree on such files, and parser bugs are where they break.
    """
    result = scan(artifact)
    return [
        Finding(
            SAFETENSORS_HEADER_INVALID,
            Severity.HIGH,
            "A safetensors file in this package has an invalid header.",
            clip(f"{problem.member}: {problem.reason}"),
            problem.member,
        )
        for problem in result.headers
    ]


__all__ = [
    "CONFIG_DANGEROUS_TARGET",
    "CONFIG_INTERPOLATION",
    "CONFIG_UNKNOWN_TARGET",
    "INTERPOLATION_RESOLVERS",
    "SAFETENSORS_HEADER_INVALID",
    "TARGET_ALLOWLIST",
    "config_dangerous_target",
    "config_interpolation",
    "config_unknown_target",
    "safetensors_header_invalid",
    "scan",
]
