from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from mirror.cli import main
from mirror.config import ConfigError, load_settings, parse_duration, parse_size
from quarantine.policy import Action

REPO = Path(__file__).resolve().parents[1]


def test_example_config_loads_and_documents_every_key():
    settings = load_settings(REPO / "config.example.toml", environ={})
    assert settings.server.bind == "127.0.0.1:8080"
    assert [str(r) for r in settings.sync.projects] == ["flask>=3", "requests"]
    assert settings.policy.cooldown == timedelta(days=3)
    text = (REPO / "config.example.toml").read_text()
    import dataclasses

    sections = ("server", "upstream", "sync", "storage", "checks", "export", "advisories", "alerts")
    for section in sections:
        for field in dataclasses.fields(getattr(settings, section)):
            assert f"\n{field.name} = " in text, f"{section}.{field.name} is not documented"
    assert "\ncooldown = " in text and "\ndata_dir = " in text and "\ninternal = " in text


def test_defaults_need_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.upstream.url == "https://pypi.org/simple/"
    assert settings.data_dir == Path("data")
    assert settings.storage.backend == "local"


def test_qmirror_toml_in_the_working_directory_is_found(tmp_path, monkeypatch):
    (tmp_path / "qmirror.toml").write_text('[server]\nbind = "0.0.0.0:9000"\n')
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.server.bind == "0.0.0.0:9000"
    assert settings.data_dir == tmp_path / "data"  # relative to the file


def test_environment_overrides_the_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[upstream]\nurl = "https://a.example/simple"\n[policy]\ncooldown = "3d"\n')
    settings = load_settings(
        config,
        environ={
            "QMIRROR_UPSTREAM_URL": "http://127.0.0.1:9/simple/",
            "QMIRROR_POLICY_COOLDOWN": "12h",
            "QMIRROR_SYNC_PROJECTS": "flask>=3, requests",
        },
    )
    assert settings.upstream.url == "http://127.0.0.1:9/simple/"
    assert settings.policy.cooldown == timedelta(hours=12)
    assert [r.name for r in settings.sync.projects] == ["flask", "requests"]


def test_config_env_variable_names_the_file(tmp_path):
    config = tmp_path / "elsewhere.toml"
    config.write_text("[sync]\nprojects = ['six']\n")
    settings = load_settings(environ={"QMIRROR_CONFIG": str(config)})
    assert [r.name for r in settings.sync.projects] == ["six"]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[sync]\nprojectz = []\n", "unknown key sync.projectz"),
        ("[sync]\nprojects = ['flask>=']\n", "sync.projects: item 1 'flask>='"),
        ("[policy]\ncooldown = 'soon'\n", "policy.cooldown: 'soon' is not a duration"),
        ("[server]\nbind = 'localhost'\n", "server.bind: 'localhost' is not HOST:PORT"),
        ("[upstream]\nurl = 'ftp://x/'\n", "upstream.url: 'ftp://x/' is not an http(s) URL"),
        ("[upstream]\nconcurrency = 0\n", "upstream.concurrency: must be at least 1"),
        ("[sync]\nplatforms = ['amiga']\n", "sync.platforms: 'amiga' is not one of"),
        ("[policy.severity]\nhigh = 'explode'\n", "policy.severity.high: 'explode' is not one of"),
        ("[policy.projects.x]\nallowed = []\n", "unknown key policy.projects.x.allowed"),
        ("unknown_top = 1\n", "unknown key unknown_top"),
        ("[sync\n", "not valid TOML"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, toml, message):
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as raised:
        load_settings(config, environ={})
    text = str(raised.value)
    assert text.startswith(f"{config}: ")
    assert message in text
    assert "\n" not in text


def test_unknown_environment_variable_is_an_error():
    with pytest.raises(ConfigError, match="QMIRROR_SYNC_PROJECT"):
        load_settings(environ={"QMIRROR_SYNC_PROJECT": "x"})


def test_cli_reports_a_bad_config_in_one_line_without_traceback(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[policy]\ncooldown = 'soon'\n")
    result = CliRunner().invoke(main, ["--config", str(config), "status"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        f"Error: {config}: policy.cooldown: 'soon' is not a duration such as '3d', '12h' or '0'"
    ]


def test_missing_config_file_is_named(tmp_path):
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.toml"), "status"])
    assert result.exit_code == 1
    assert "nope.toml: config file not found" in result.output


def test_policy_tables_become_a_policy():
    from mirror.config import settings_from_mapping

    settings = settings_from_mapping(
        {
            "policy": {
                "cooldown": "0",
                "severity": {"medium": "warn"},
                "checks": {"metadata-invalid": "ignore"},
                "projects": {"SetupTools": {"allow": ["pth-import"], "cooldown": "1h"}},
            }
        }
    )
    policy = settings.policy.build()
    assert policy.cooldown == timedelta(0)
    assert policy.check_actions["metadata-invalid"] is Action.IGNORE
    assert policy.project_allow["setuptools"] == frozenset({"pth-import"})
    assert policy.cooldown_for("setuptools") == timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3d", 259200), ("12h", 43200), ("90m", 5400), ("0", 0), (60, 60), ("1w", 604800)],
)
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize(
    ("text", "size"), [("500MB", 500_000_000), ("2GiB", 2 * 1024**3), (0, 0), ("10kb", 10_000)]
)
def test_sizes(text, size):
    assert parse_size(text) == size


def test_internal_patterns_are_normalized_and_matched():
    from mirror.config import is_internal, settings_from_mapping

    settings = settings_from_mapping({"policy": {"internal": ["Acme_*", "Billing.Core"]}})
    assert settings.policy.internal == ("acme-*", "billing-core")
    assert is_internal("acme-tools", settings.policy.internal)
    assert is_internal("billing-core", settings.policy.internal)
    assert not is_internal("billing-core2", settings.policy.internal)
    assert not is_internal("flask", settings.policy.internal)


def test_unknown_check_ids_are_config_errors(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[policy.checks]\ntyposqat = 'warn'\n")
    with pytest.raises(ConfigError, match=r"unknown check id policy\.checks\.typosqat"):
        load_settings(config, environ={})
    config.write_text("[policy.projects.pymoo]\nallow = ['typo']\n")
    with pytest.raises(ConfigError, match=r"pymoo\.allow: unknown check id 'typo'"):
        load_settings(config, environ={})
    config.write_text("[policy.projects.pymoo]\nallow = ['typosquat']\n")
    assert load_settings(config, environ={}).policy.projects["pymoo"].allow == ("typosquat",)


def test_environment_lists_may_be_toml_arrays_for_specifiers_with_commas():
    settings = load_settings(environ={"QMIRROR_SYNC_PROJECTS": '["flask>=3,<4", "requests"]'})
    assert [str(r) for r in settings.sync.projects] == ["flask<4,>=3", "requests"]
