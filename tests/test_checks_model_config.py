"""config-dangerous-target, config-unknown-target, config-interpolation and
safetensors-header-invalid: Hydra ``_target_`` strings in YAML/JSON members, .nemo tars
and safetensors ``__metadata__``, and the safetensors header itself."""

from __future__ import annotations

import io
import json
import struct
import tarfile
import time
import zipfile

import pytest

from quarantine import CheckContext, Severity, inspect_file
from quarantine.checks import CATALOGUE, Check, modelconfig
from quarantine.checks.modelconfig import (
    CONFIG_DANGEROUS_TARGET,
    CONFIG_INTERPOLATION,
    CONFIG_UNKNOWN_TARGET,
    SAFETENSORS_HEADER_INVALID,
)
from tests.support.builders import make_wheel

CONFIG_CHECKS = [
    Check(CONFIG_DANGEROUS_TARGET, modelconfig.config_dangerous_target),
    Check(CONFIG_UNKNOWN_TARGET, modelconfig.config_unknown_target),
    Check(CONFIG_INTERPOLATION, modelconfig.config_interpolation),
    Check(SAFETENSORS_HEADER_INVALID, modelconfig.safetensors_header_invalid),
]


def inspect(path):
    return inspect_file(path, CheckContext(filename=path.name), checks=CONFIG_CHECKS).findings


def wheel(tmp_path, files):
    return make_wheel(tmp_path, "demo", "1.0", files={"demo/__init__.py": b"", **files})


def only(findings, check):
    found = [finding for finding in findings if finding.check == check]
    assert len(found) == 1, findings
    return found[0]


def safetensors(tensors=None, metadata=None, *, buffer=None, raw_header=None) -> bytes:
    """A safetensors file: 8-byte little-endian header length, JSON header, buffer."""
    tensors = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, **(tensors or {})}
    header = dict(tensors)
    if metadata is not None:
        header["__metadata__"] = metadata
    encoded = raw_header if raw_header is not None else json.dumps(header).encode()
    data = bytes(max(end for _, end in (t["data_offsets"] for t in tensors.values())))
    return struct.pack("<Q", len(encoded)) + encoded + (data if buffer is None else buffer)


def nemo(config: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in {"./model_config.yaml": config, "./model_weights.ckpt": b""}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# ---------------------------------------------------------------- _target_


@pytest.mark.parametrize(
    "target",
    ["os.system", "subprocess.run", "builtins.eval", "builtins.exec", "logging.os.system",
     "hydra._internal.utils.os.system", "hydra.utils.get_method", "torch.load"],
)  # fmt: skip
def test_dangerous_yaml_target_is_rejected(tmp_path, target):
    config = f"model:\n  encoder:\n    _target_: {target}\n    _args_: [echo hi]\n".encode()
    finding = only(inspect(wheel(tmp_path, {"demo/conf/model.yaml": config})),
                   CONFIG_DANGEROUS_TARGET)  # fmt: skip
    assert finding.severity is Severity.CRITICAL and finding.path == "demo/conf/model.yaml"
    assert f"model.encoder._target_: {target}" in finding.evidence
    assert "_args_" in finding.evidence


def test_dangerous_json_target_and_partial(tmp_path):
    config = json.dumps({"loss": {"_target_": "builtins.eval", "_partial_": True}}).encode()
    finding = only(inspect(wheel(tmp_path, {"demo/config.json": config})), CONFIG_DANGEROUS_TARGET)
    assert "loss._target_: builtins.eval (_partial_: True)" in finding.evidence


def test_target_in_a_nemo_model_config(tmp_path):
    archive = nemo(b"encoder:\n  _target_: subprocess.Popen\n")
    finding = only(inspect(wheel(tmp_path, {"demo/asr.nemo": archive})), CONFIG_DANGEROUS_TARGET)
    assert "demo/asr.nemo!./model_config.yaml encoder._target_: subprocess.Popen" in (
        finding.evidence
    )


def test_yaml_python_tags_count_as_targets(tmp_path):
    config = b"a: !!python/object/apply:os.system ['echo']\nb: !!python/name:mylib.thing\n"
    findings = inspect(wheel(tmp_path, {"demo/x.yml": config}))
    assert "!!python/object/apply: os.system" in only(findings, CONFIG_DANGEROUS_TARGET).evidence
    assert "mylib.thing" in only(findings, CONFIG_UNKNOWN_TARGET).evidence


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("x.yaml", b'a:\n  "\\x5ftarget_": os.system\n'),
        ("x.json", b'{"a": {"\\u005ftarget_": "os.system"}}'),
        ("x.yaml", "a:\n  _target_: os.system\n".encode("utf-16")),
        ("x.yaml", b'a:\n  ? "_tar\\\n    get_"\n  : os.system\n'),
        ("x.yaml", b"a: !<tag:yaml.org,2002:%70ython/object/apply:os.system> [echo]\n"),
    ],
)
def test_targets_spelled_without_the_bytes_are_found(tmp_path, name, config):
    findings = inspect(wheel(tmp_path, {f"demo/{name}": config}))
    assert "os.system" in only(findings, CONFIG_DANGEROUS_TARGET).evidence


def test_unparseable_config_is_read_as_text(tmp_path):
    config = b"model: [unclosed\n  _target_: os.system\n"
    finding = only(inspect(wheel(tmp_path, {"demo/x.yaml": config})), CONFIG_DANGEROUS_TARGET)
    assert "unparsed text" in finding.evidence


def test_targets_outside_the_package_and_allowlist_are_held(tmp_path):
    config = b"a:\n  _target_: somelib.models.Net\nb:\n  _target_: ${oc.select:x}\n"
    finding = only(inspect(wheel(tmp_path, {"demo/x.yaml": config})), CONFIG_UNKNOWN_TARGET)
    assert finding.severity is Severity.MEDIUM
    assert "somelib.models.Net" in finding.evidence and "${oc.select:x}" in finding.evidence


def test_own_and_allowlisted_targets_pass(tmp_path):
    config = (
        b"defaults: [_self_]\n"
        b"model:\n  _target_: demo.models.Net\n  layer:\n    _target_: torch.nn.Linear\n"
        b"    in_features: ${model.dim}\n"
        b"optim:\n  _target_: torch.optim.AdamW\n  _partial_: true\n"
        b"process: !function utils.process_docs\n"  # lm-eval's application tag
    )
    metadata = {"format": "pt", "config": json.dumps({"_target_": "demo.Net"})}
    files = {"demo/conf/train.yaml": config, "demo/w.safetensors": safetensors(metadata=metadata)}
    assert inspect(wheel(tmp_path, files)) == ()


def test_yaml_alias_bomb_is_cheap(tmp_path):
    lines = ["a0: &a0 {_target_: torch.nn.Identity}"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    started = time.monotonic()
    assert inspect(wheel(tmp_path, {"demo/bomb.yaml": "\n".join(lines).encode()})) == ()
    assert time.monotonic() - started < 5


def test_config_too_large_to_parse_is_searched_in_chunks(tmp_path):
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:  # stored: no compression ratio to trip
        filler = b"k: 1\n" * (modelconfig.MAX_CONFIG_SIZE // 5)
        archive.writestr("demo/huge.yaml", filler + b"a:\n  _target_: os.system\nb: ${oc.env:X}\n")
    findings = inspect(path)
    assert "over 16777216 bytes" in only(findings, CONFIG_UNKNOWN_TARGET).evidence
    assert "(unparsed text): os.system" in only(findings, CONFIG_DANGEROUS_TARGET).evidence
    assert (
        f"line {len(filler) // 5 + 3}: ${{oc.env:X}}"
        in only(findings, CONFIG_INTERPOLATION).evidence
    )


def test_deeply_nested_yaml_is_read_as_text_not_parsed(tmp_path):
    # libyaml's composer recurses without a limit: this would crash the interpreter.
    config = b"_target_: os.system\nx: " + b"[" * 200_000 + b"]" * 200_000 + b"\n"
    finding = only(inspect(wheel(tmp_path, {"demo/deep.yaml": config})), CONFIG_DANGEROUS_TARGET)
    assert "_target_ (unparsed text): os.system" in finding.evidence


# ---------------------------------------------------------------- interpolations


def test_env_and_eval_interpolations_are_held(tmp_path):
    config = b"key: ${oc.env:AWS_SECRET_ACCESS_KEY}\nlr: ${eval:'2**-4'}\ndim: ${model.dim}\n"
    finding = only(inspect(wheel(tmp_path, {"demo/x.yaml": config})), CONFIG_INTERPOLATION)
    assert finding.severity is Severity.MEDIUM
    assert "line 1: ${oc.env:AWS_SECRET_ACCESS_KEY}" in finding.evidence
    assert "line 2: ${eval:" in finding.evidence and "model.dim" not in finding.evidence


def test_escaped_interpolation_is_found_in_the_parsed_value(tmp_path):
    config = b'_target_: torch.nn.Linear\nkey: "$\\x7boc.env:AWS_SECRET_ACCESS_KEY}"\n'
    finding = only(inspect(wheel(tmp_path, {"demo/x.yaml": config})), CONFIG_INTERPOLATION)
    assert "key: ${oc.env:AWS_SECRET_ACCESS_KEY}" in finding.evidence


# ---------------------------------------------------------------- safetensors


@pytest.mark.parametrize(
    ("metadata", "evidence"),
    [
        ({"config": json.dumps({"model": {"_target_": "os.system"}})}, "model._target_"),
        ({"config": "model:\n  _target_: posix.system\n"}, "posix.system"),
        ({"_target_": "builtins.exec"}, "__metadata__._target_: builtins.exec"),
    ],
)
def test_target_in_safetensors_metadata(tmp_path, metadata, evidence):
    path = wheel(tmp_path, {"demo/model.safetensors": safetensors(metadata=metadata)})
    findings = inspect(path)
    assert evidence in only(findings, CONFIG_DANGEROUS_TARGET).evidence
    assert not [f for f in findings if f.check == SAFETENSORS_HEADER_INVALID]


def header(tensors):
    return {name: {"dtype": "F32", "shape": [n], "data_offsets": [a, b]}
            for name, (n, a, b) in tensors.items()}  # fmt: skip


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (struct.pack("<Q", 200_000_000) + b"{}", "over 100000000"),
        (struct.pack("<Q", 50) + b"{}", "runs past"),
        (b"\x01\x02", "no 8-byte header length"),
        (safetensors(raw_header=b"[1, 2]"), "not a JSON object"),
        (safetensors(raw_header=b'{"a": 1, "a": 2}'), "duplicate keys"),
        (safetensors(metadata={"n": 1}), "string-to-string"),
        (safetensors(header({"x": (4, 8, 24)})), "overlaps"),
        (safetensors(header({"x": (2, 24, 32)})), "leaves a gap"),
        (safetensors(buffer=bytes(20)), "cover 16 bytes of a 20-byte"),
        (safetensors({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}), "spans"),
        (safetensors({"x": {"dtype": "Q9", "shape": [], "data_offsets": [16, 16]}}), "dtype"),
        (safetensors({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [16, 16]}}),
         "invalid shape"),
    ],
)  # fmt: skip
def test_invalid_safetensors_headers(tmp_path, data, reason):
    finding = only(inspect(wheel(tmp_path, {"demo/m.safetensors": data})),
                   SAFETENSORS_HEADER_INVALID)  # fmt: skip
    assert finding.severity is Severity.HIGH and reason in finding.evidence


def test_valid_safetensors_pass(tmp_path):
    tensors = {
        "b": {"dtype": "BF16", "shape": [4], "data_offsets": [16, 24]},
        "e": {"dtype": "I64", "shape": [0], "data_offsets": [24, 24]},
        "f": {"dtype": "F4", "shape": [2, 3], "data_offsets": [24, 27]},
    }
    data = safetensors(tensors, {"format": "pt"})
    padded = json.dumps(header({"w": (4, 0, 16)})).encode() + b"    "  # the spec allows it
    files = {
        "demo/a.safetensors": data,
        "demo/b.safetensors": struct.pack("<Q", len(padded)) + padded + bytes(16),
    }
    assert inspect(wheel(tmp_path, files)) == ()


def test_the_checks_are_in_the_catalogue():
    ids = {check.id for check in CATALOGUE}
    assert {check.id for check in CONFIG_CHECKS} <= ids
