"""pickle-dangerous-import, pickle-unknown-import, pickle-unverified: pickle streams in
.pkl/.joblib files, torch checkpoints (zip and legacy), .npy/.npz object arrays and .nemo
tars. Payloads are inert (``echo``) and only ever pickled, never loaded."""

from __future__ import annotations

import bz2
import collections
import gzip
import io
import os
import pickle
import random
import struct
import tarfile
import zipfile

import pytest

from quarantine import CheckContext, Severity, inspect_file
from quarantine.artifact import Artifact
from quarantine.checks import CATALOGUE, CHECK_CRASHED, Check, pickles
from quarantine.checks.archive import ARCHIVE_UNREADABLE
from quarantine.checks.modelconfig import SAFETENSORS_HEADER_INVALID
from quarantine.checks.modelfiles import danger, own_top_levels
from quarantine.checks.pickles import (
    PICKLE_DANGEROUS_IMPORT,
    PICKLE_UNKNOWN_IMPORT,
    PICKLE_UNVERIFIED,
    walk_pickle,
    walk_stream,
)
from tests.support.builders import make_sdist, make_wheel
from tests.test_checks_model_config import CONFIG_CHECKS, safetensors

PICKLE_CHECKS = [
    Check(PICKLE_DANGEROUS_IMPORT, pickles.pickle_dangerous_import),
    Check(PICKLE_UNKNOWN_IMPORT, pickles.pickle_unknown_import),
    Check(PICKLE_UNVERIFIED, pickles.pickle_unverified),
]


class System:
    """Pickles as a call of os.system("echo"): the classic payload."""

    def __reduce__(self):
        return (os.system, ("echo",))


class Eval:
    def __reduce__(self):
        return (eval, ("1",))


def evil(protocol: int = 2) -> bytes:
    return pickle.dumps({"weights": [1.0, 2.0], "x": System()}, protocol=protocol)


def inspect(path, checks=PICKLE_CHECKS):
    return inspect_file(path, CheckContext(filename=path.name), checks=checks).findings


def wheel(tmp_path, files, name="demo"):
    return make_wheel(tmp_path, name, "1.0", files={f"{name}/__init__.py": b"", **files})


def only(findings, check):
    found = [finding for finding in findings if finding.check == check]
    assert len(found) == 1, findings
    return found[0]


# ---------------------------------------------------------------- hand-built pickles


def op_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def short_str(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def torch_state_dict() -> bytes:
    """What torch.save writes as archive/data.pkl for {"weight": tensor}: an OrderedDict,
    _rebuild_tensor_v2 and a persistent id naming the FloatStorage (protocol 2)."""
    storage = (
        b"(" + short_str("storage") + op_global("torch", "FloatStorage")
        + short_str("0") + short_str("cpu") + b"K\x04tQ"
    )  # fmt: skip
    tensor = (
        op_global("torch._utils", "_rebuild_tensor_v2")
        + b"(" + storage + b"K\x00K\x02K\x02\x86K\x02K\x01\x86\x89"
        + op_global("collections", "OrderedDict") + b")Rtq\x01R"
    )  # fmt: skip
    return (
        b"\x80\x02" + op_global("collections", "OrderedDict") + b")Rq\x00"
        + b"(" + short_str("weight") + tensor + b"u."
    )  # fmt: skip


def torch_zip(data_pkl: bytes, root: str = "archive") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{root}/data.pkl", data_pkl)
        archive.writestr(f"{root}/byteorder", b"little")
        archive.writestr(f"{root}/data/0", bytes(16))
        archive.writestr(f"{root}/version", b"3\n")
    return buffer.getvalue()


def npy(descr: str, body: bytes, shape: str = "(1,)") -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    padded = header.ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(padded)) + padded.encode() + body


def npz(**arrays: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in arrays.items():
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


def nemo(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# ---------------------------------------------------------------- the walker


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_walker_finds_os_system_in_every_protocol(protocol):
    walk = walk_stream(evil(protocol))
    assert walk.complete and walk.error is None
    (found,) = walk.imports
    assert found.resolved in ("posix.system", "nt.system")
    assert found.opcode == ("STACK_GLOBAL" if protocol >= 4 else "GLOBAL")
    assert danger(found.resolved) is not None
    assert walk.counts["REDUCE"] == 1


def test_walker_traces_stack_global_operands_through_the_memo():
    # Both strings are pushed, memoized, popped, then fetched back with BINGET.
    data = (
        b"\x80\x04" + short_str("builtins") + b"\x94" + short_str("eval") + b"\x94"
        + b"00" + b"h\x00h\x01\x93" + short_str("1") + b"\x85R."
    )  # fmt: skip
    (found,) = walk_stream(data).imports
    assert (found.resolved, found.opcode, found.position) == ("builtins.eval", "STACK_GLOBAL", 26)


def test_walker_reports_untraceable_stack_global_operands():
    data = b"\x80\x04K\x01K\x02\x93."
    (found,) = walk_stream(data).imports
    assert found.module == "?" and "not traced" in found.opcode


def test_walker_maps_python2_names_like_the_unpickler():
    (found,) = walk_stream(b"\x80\x02" + op_global("__builtin__", "eval") + b"N.").imports
    assert found.resolved == "builtins.eval"


def test_walker_never_raises_and_respects_the_opcode_limit():
    walk, _ = walk_pickle(b"\x80\x02" + b"N0" * 100 + b"N.", max_ops=50)
    assert walk.exhausted and "over 50 opcodes" in (walk.error or "")
    for junk in (b"", b"\x80", b"\xff\xfe", b"c" + b"a" * 10, b"\x80\x02\x8a\xff"):
        assert not walk_stream(junk).complete


@pytest.mark.parametrize(
    ("dotted", "dangerous"),
    [
        ("posix.system", True),
        ("subprocess.Popen", True),
        ("builtins.getattr", True),
        ("logging.os.system", True),  # a stdlib module reached through an attribute
        ("hydra._internal.utils.os.system", True),
        ("collections.OrderedDict.__init__.__globals__", True),
        ("torch.load", True),
        ("collections.OrderedDict", False),
        ("numpy.random._pickle.__generator_ctor", False),  # a submodule, not pickle
        ("future.builtins.newint", False),
        ("torch._utils._rebuild_tensor_v2", False),
    ],
)
def test_dangerous_names(dotted, dangerous):
    assert (danger(dotted) is not None) is dangerous


# ---------------------------------------------------------------- poisoned files


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".joblib"])
def test_pickle_file_calling_os_system_is_rejected(tmp_path, suffix):
    path = wheel(tmp_path, {f"demo/model{suffix}": evil(4)})
    finding = only(inspect(path), PICKLE_DANGEROUS_IMPORT)
    assert finding.severity is Severity.CRITICAL
    assert finding.path == f"demo/model{suffix}"
    assert "system" in finding.evidence and "offset" in finding.evidence
    assert "REDUCE 1" in finding.evidence


def test_torch_zip_checkpoint_with_a_payload_in_data_pkl(tmp_path):
    path = wheel(tmp_path, {"demo/weights.pt": torch_zip(evil(2))})
    finding = only(inspect(path), PICKLE_DANGEROUS_IMPORT)
    assert finding.path == "demo/weights.pt"
    assert "demo/weights.pt!archive/data.pkl" in finding.evidence


@pytest.mark.parametrize("suffix", [".bin", ".ckpt", ".pth"])
def test_legacy_torch_file_with_a_payload_after_the_magic(tmp_path, suffix):
    # torch.save before 1.6: magic, protocol, sys info, the object, storage keys, bytes.
    parts = [pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2), pickle.dumps(1001, protocol=2),
             pickle.dumps({"little_endian": True}, protocol=2), evil(2),
             pickle.dumps(["0"], protocol=2), bytes(64)]  # fmt: skip
    path = wheel(tmp_path, {f"demo/model{suffix}": b"".join(parts)})
    assert "system" in only(inspect(path), PICKLE_DANGEROUS_IMPORT).evidence


def test_npy_object_array_and_npz_with_a_payload(tmp_path):
    poisoned = npy("|O", evil(2))
    path = wheel(tmp_path, {"demo/a.npy": poisoned, "demo/b.npz": npz(x=poisoned)})
    findings = [f for f in inspect(path) if f.check == PICKLE_DANGEROUS_IMPORT]
    assert {f.path for f in findings} == {"demo/a.npy", "demo/b.npz"}
    assert any("demo/b.npz!x.npy" in f.evidence for f in findings)


def test_npy_header_tricks_do_not_hide_an_object_array(tmp_path):
    # literal_eval keeps the last duplicate key, and joins adjacent string literals.
    tricks = {
        "demo/dup.npy": "{'descr': '<f8', 'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
        "demo/cat.npy": "{'descr': '<f8', 'desc' 'r': '|O', 'fortran_order': False, 'shape': (1,)}",
        "demo/rec.npy": "{'descr': [('a', '<f8'), ('b', '|O')], 'shape': (1,)}",
    }
    files = {}
    for name, header in tricks.items():
        padded = header.ljust(127) + "\n"
        files[name] = (
            b"\x93NUMPY\x01\x00" + struct.pack("<H", len(padded)) + padded.encode() + evil()
        )
    findings = [f for f in inspect(wheel(tmp_path, files)) if f.check == PICKLE_DANGEROUS_IMPORT]
    assert {f.path for f in findings} == set(tricks)


def test_compressed_pickles_are_decompressed(tmp_path):
    files = {"demo/a.pkl.gz": gzip.compress(evil()), "demo/b.pkl.bz2": bz2.compress(evil())}
    findings = [f for f in inspect(wheel(tmp_path, files)) if f.check == PICKLE_DANGEROUS_IMPORT]
    assert len(findings) == 2


def test_nemo_tar_with_a_poisoned_checkpoint(tmp_path):
    archive = nemo({"./model_config.yaml": b"a: 1\n", "./model_weights.ckpt": torch_zip(evil())})
    finding = only(inspect(wheel(tmp_path, {"demo/model.nemo": archive})), PICKLE_DANGEROUS_IMPORT)
    assert "model_weights.ckpt!archive/data.pkl" in finding.evidence


def test_payload_hidden_after_joblib_style_raw_bytes_is_still_found(tmp_path):
    # joblib writes raw array bytes inside the stream; the walk breaks off there and the
    # rest is scanned for import opcodes.
    data = b"\x80\x02" + op_global("joblib.numpy_pickle", "NumpyArrayWrapper") + b"\x00\x01"
    data += bytes(32) + op_global("os", "system") + b"X\x04\x00\x00\x00echo\x85R."
    findings = inspect(wheel(tmp_path, {"demo/m.joblib": data}))
    assert "raw GLOBAL os system" in only(findings, PICKLE_DANGEROUS_IMPORT).evidence
    # joblib reads on past the break: unverified, held (except in joblib's own wheel)
    assert only(findings, PICKLE_UNVERIFIED).severity is Severity.MEDIUM
    (tmp_path / "joblib").mkdir()
    own = wheel(tmp_path / "joblib", {"joblib/test/m.pkl": data}, name="joblib")
    assert only(inspect(own), PICKLE_UNVERIFIED).severity is Severity.LOW


def test_eval_via_stack_global_and_sdist_members(tmp_path):
    data = pickle.dumps([Eval(), Eval()], protocol=5)
    path = make_sdist(tmp_path, "demo", "1.0", files={"data/model.pkl": data})
    finding = only(inspect(path), PICKLE_DANGEROUS_IMPORT)
    assert "builtins eval" in finding.evidence and finding.path == "demo-1.0/data/model.pkl"


def test_imports_outside_the_allowlist_are_held(tmp_path):
    data = b"\x80\x02" + op_global("sklearn.linear_model._base", "LinearRegression") + b")\x81."
    finding = only(inspect(wheel(tmp_path, {"demo/model.pkl": data})), PICKLE_UNKNOWN_IMPORT)
    assert finding.severity is Severity.MEDIUM
    assert "sklearn.linear_model._base LinearRegression" in finding.evidence


def test_truncated_pickle_is_a_low_finding_and_corrupt_zip_is_too(tmp_path):
    files = {"demo/cut.pkl": evil()[:-8], "demo/bad.pt": b"PK\x03\x04" + bytes(40)}
    findings = [f for f in inspect(wheel(tmp_path, files)) if f.check == PICKLE_UNVERIFIED]
    assert {(f.path, f.severity) for f in findings} == {
        ("demo/cut.pkl", Severity.LOW),
        ("demo/bad.pt", Severity.LOW),
    }


def test_an_unreadable_pickle_member_is_archive_unreadable_once(tmp_path):
    path = wheel(tmp_path, {"demo/model.pkl": evil() * 50})
    data = bytearray(path.read_bytes())
    at = data.index(b"demo/model.pkl") + len("demo/model.pkl") + 10  # inside the deflate data
    data[at : at + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    findings = inspect(path)
    assert [f.check for f in findings] == [ARCHIVE_UNREADABLE], findings


# ---------------------------------------------------------------- look-alikes that pass


def test_benign_torch_state_dicts_pass(tmp_path):
    state = torch_state_dict()
    walk = walk_stream(state)
    assert walk.complete and {i.resolved for i in walk.imports} == {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch.FloatStorage",
    }
    files = {"demo/weights.pt": torch_zip(state, "weights"), "demo/raw.pth": state,
             "demo/lpips.bin": state}  # fmt: skip
    assert inspect(wheel(tmp_path, files)) == ()


def test_plain_data_and_the_packages_own_classes_pass(tmp_path):
    own = b"\x80\x02" + op_global("demo.models", "Net") + b")\x81}b."
    files = {
        "demo/data.pkl": pickle.dumps(collections.OrderedDict(a={1, 2}, b=(1.5, "x")), 2),
        "demo/net.pkl": own,
        "demo/floats.npy": npy("<f8", bytes(8)),
        "demo/rom.bin": bytes(range(256)) * 16,  # not a pickle: never walked
        "demo/paths.pth": b"import demo\n",  # a site-packages path file, not a pickle
    }
    assert inspect(wheel(tmp_path, files)) == ()


def test_numpy_test_data_is_numpys_own(corpus):
    path = next(corpus.glob("numpy-*.whl"))
    with Artifact.open(path) as artifact:
        reports = pickles.scan(artifact).reports
        assert "numpy" in own_top_levels(artifact)
    walked = {r.member for r in reports if r.walk is not None}
    assert {"numpy/_core/tests/data/astype_copy.pkl", "numpy/lib/tests/data/py3-objarr.npz",
            "numpy/random/tests/data/sfc64_np126.pkl.gz"} <= walked  # fmt: skip
    assert inspect(path) == ()


def test_the_checks_are_in_the_catalogue():
    ids = {check.id for check in CATALOGUE}
    assert {check.id for check in PICKLE_CHECKS} <= ids


# ---------------------------------------------------------------- hostile bytes


def test_mutated_model_files_never_crash_a_check(tmp_path):
    originals = {
        "demo/a.pkl": evil(4),
        "demo/b.pt": torch_zip(torch_state_dict()),
        "demo/c.npz": npz(x=npy("|O", evil(2))),
        "demo/d.nemo": nemo({"./c.yaml": b"a:\n  _target_: x.y\n", "./w.ckpt": torch_zip(evil())}),
        "demo/e.safetensors": safetensors(metadata={"c": '{"_target_": "a.b"}'}),
        "demo/f.yaml": b"a: &x {_target_: torch.nn.Linear, b: ${oc.env:HOME}}\nb: *x\n",
    }
    rng = random.Random(4321)
    seen = set()
    for round_ in range(120):
        files = {}
        for name, data in originals.items():
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 6)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            if rng.random() < 0.3:
                del mutated[rng.randrange(len(mutated)) :]
            files[name] = bytes(mutated)
        directory = tmp_path / str(round_)
        directory.mkdir()
        findings = inspect(wheel(directory, files), checks=PICKLE_CHECKS + CONFIG_CHECKS)
        assert CHECK_CRASHED not in {finding.check for finding in findings}, findings
        seen.update(finding.check for finding in findings)
    assert {PICKLE_DANGEROUS_IMPORT, PICKLE_UNVERIFIED, SAFETENSORS_HEADER_INVALID} <= seen


def test_the_walker_survives_random_bytes():
    rng = random.Random(99)
    for _ in range(2000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        walk_stream(b"\x80\x04" + data)
