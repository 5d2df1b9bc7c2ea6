from packaging.markers import Marker
from packaging.utils import parse_wheel_filename

from mirror.targets import Targets

TARGETS = Targets(("3.11", "3.12"), ("linux-x86_64", "macos-arm64", "windows-amd64"))


def wanted(filename: str) -> bool:
    return TARGETS.wheel_wanted(parse_wheel_filename(filename)[3])


def test_wheels_for_configured_pythons_and_platforms_are_wanted():
    assert wanted("markupsafe-3.0.3-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl")
    assert wanted("x-1.0-cp312-cp312-macosx_11_0_arm64.whl")
    assert wanted("x-1.0-cp311-cp311-win_amd64.whl")
    assert wanted("x-1.0-cp38-abi3-manylinux_2_17_x86_64.whl")  # stable ABI
    assert wanted("x-1.0-py3-none-any.whl")
    assert wanted("x-1.0-py2.py3-none-any.whl")
    assert wanted("x-1.0-cp311-cp311-musllinux_1_2_x86_64.whl")


def test_wheels_for_other_pythons_and_platforms_are_not():
    assert not wanted("x-1.0-cp310-cp310-win_amd64.whl")
    assert not wanted("x-1.0-cp311-cp311-manylinux_2_17_aarch64.whl")
    assert not wanted("x-1.0-cp311-cp311-win32.whl")
    assert not wanted("x-1.0-py2-none-any.whl")
    assert not wanted("x-1.0-pp310-pypy310_pp73-manylinux_2_17_x86_64.whl")


def test_markers_are_evaluated_for_every_target_and_extra():
    assert TARGETS.marker_applies(None, frozenset())
    assert not TARGETS.marker_applies(Marker('python_version < "3.10"'), frozenset())
    assert TARGETS.marker_applies(Marker('sys_platform == "win32"'), frozenset())
    assert not TARGETS.marker_applies(Marker('sys_platform == "cygwin"'), frozenset())
    assert not TARGETS.marker_applies(Marker('extra == "async"'), frozenset())
    assert TARGETS.marker_applies(Marker('extra == "async"'), frozenset({"async"}))


def test_requires_python_filters_files_no_configured_python_can_install():
    assert TARGETS.python_supported(None)
    assert TARGETS.python_supported(">=3.8")
    assert TARGETS.python_supported(">=3.11.2")  # a later 3.11 micro release can
    assert not TARGETS.python_supported("<3")
    assert not TARGETS.python_supported(">=3.13")
    assert TARGETS.python_supported("not a specifier")  # kept; the checks judge it
