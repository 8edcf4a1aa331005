"""The ``nodeview`` command's settings: help, ``config check``, one-line errors, near misses."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from devstack.dev_settings import DevSettings
from services.api.settings import ApiSettings
from services.cli import main
from services.cli_settings import known_variables, near_misses, settings_of
from services.config import ConsulSettings, NatsSettings
from services.enricher.settings import EnricherSettings
from services.relay.settings import RelaySettings

NODEVIEW = Path(sys.executable).with_name("nodeview")
"""The installed entry point, run as an operator would."""

SECRET = "s3cr3t-value-that-must-not-show"

COMMANDS: list[tuple[list[str], type[BaseSettings]]] = [
    (["api"], ApiSettings),
    (["enricher"], EnricherSettings),
    (["relay", "serve"], RelaySettings),
    (["relay", "watch"], RelaySettings),
    (["relay", "handle"], RelaySettings),
    (["dev"], DevSettings),
    (["config", "check", "relay"], RelaySettings),
]


@pytest.fixture(autouse=True)
def environ() -> Iterator[None]:
    """Give each test the environment back as it was: flags are written into it."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("argv", "cls"), COMMANDS, ids=[" ".join(argv) for argv, _ in COMMANDS])
def test_help_lists_every_setting_with_its_variable_flag_and_meaning(
    argv: list[str], cls: type[BaseSettings], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each command's --help names every setting it reads: flag, variables, default, meaning."""
    os.environ["RELAY_TOKEN"] = SECRET
    os.environ["API_ADMIN_TOKEN"] = SECRET
    code, out, _ = _run([*argv, "--help"], capsys)
    assert code == 0
    flat = _flat(out)
    for setting in settings_of(cls):
        for name in setting.env:
            assert name in out, name
        if setting.flag is not None:
            assert re.search(re.escape(setting.flag) + r"[ ,\n]", out), setting.flag
            assert f"default {setting.default}]" in flat, setting.field
        assert setting.meaning in flat, setting.field
    assert SECRET not in out


@pytest.mark.parametrize(
    "cls", [NatsSettings, ConsulSettings, ApiSettings, RelaySettings, EnricherSettings, DevSettings]
)
def test_every_setting_says_what_it_means(cls: type[BaseSettings]) -> None:
    """Every field of these settings classes has a one-line meaning for --help."""
    assert [s.field for s in settings_of(cls) if not s.meaning] == []


def test_secrets_get_no_flag() -> None:
    """Tokens and passwords come from the environment or a file, never from a flag."""
    secrets = [s for s in settings_of(RelaySettings) if s.secret]
    assert {name for s in secrets for name in s.env} >= {"RELAY_TOKEN", "CONSUL_TOKEN"}
    assert all(s.flag is None for s in secrets)
    with pytest.raises(SystemExit) as refused:
        main(["relay", "serve", "--relay-token", "x"])  # not taken for --relay-token-file
    assert refused.value.code == 2


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``nodeview --version`` prints the installed package's version."""
    code, out, _ = _run(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"nodeview {version('nodeview')}"


def test_config_check_prints_values_and_where_they_came_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A flag wins over the environment; each line says flag, env or default."""
    os.environ["API_PORT"] = "9000"
    os.environ["LOG_LEVEL"] = "debug"
    code, out, err = _run(["config", "check", "api", "--api-port", "9100"], capsys)
    assert (code, err) == (0, "")
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert out.splitlines()[0] == "api: valid"
    assert lines["API_PORT"] == ["9100", "flag", "--api-port"]
    assert lines["LOG_LEVEL"] == ["DEBUG", "env", "LOG_LEVEL"]
    assert lines["API_HOST"] == ["127.0.0.1", "default"]
    assert set(lines) == {s.env[0] for s in settings_of(ApiSettings)}


def test_config_check_of_every_role_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a role, ``config check`` checks and prints api, enricher and relay."""
    code, out, _ = _run(["config", "check"], capsys)
    assert code == 0
    assert [line for line in out.splitlines() if not line.startswith(" ")] == [
        "api: valid",
        "enricher: valid",
        "relay: valid",
    ]


def test_config_check_hides_secrets_and_url_credentials(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Tokens, passwords and ``user:password@`` in URLs never appear in ``config check``."""
    token_file = tmp_path / "relay.token"
    token_file.write_text(SECRET, encoding="utf-8")
    os.environ.update(
        {
            "RELAY_TOKEN_FILE": str(token_file),
            "CONSUL_HTTP_TOKEN": SECRET,
            "NATS_PASSWORD": SECRET,
            "NATS_USER": "relay",
            "NATS_URL": f"nats://relay:{SECRET}@127.0.0.1:4222",
            "CONSUL_SERVERS": f"http://ops:{SECRET}@127.0.0.1:8500",
        }
    )
    code, out, err = _run(["config", "check", "relay"], capsys)
    assert code == 0
    assert SECRET not in out + err
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert lines["CONSUL_HTTP_TOKEN"] == ["(set,", "hidden)", "env", "CONSUL_HTTP_TOKEN"]
    assert lines["CONSUL_SERVERS"][0] == "http://***@127.0.0.1:8500"
    assert lines["NATS_URL"][0] == "nats://***@127.0.0.1:4222"


CHECK = ["config", "check"]

BAD_VALUES = [
    ("API_PORT", "abc", [*CHECK, "api"], "API_PORT: input should be a valid integer"),
    ("CONSUL_SERVERS", "::bad", CHECK, "CONSUL_SERVERS: entry "),
    ("LOG_LEVEL", "verbose", CHECK, "LOG_LEVEL: 'verbose' is not a log level"),
    ("CONSUL_HTTP_ADDR", "unix:///run/consul.sock", [*CHECK, "relay"], "CONSUL_HTTP_ADDR: entry"),
    ("CONSUL_NAMESPACE", "no_such/ns", [*CHECK, "enricher"], "CONSUL_NAMESPACE: "),
    ("CONSUL_CLIENT_CERT", "/nonexistent.pem", [*CHECK, "relay"], "CONSUL_CLIENT_KEY go together"),
    ("RELAY_TOKEN_FILE", "/nonexistent", [*CHECK, "relay"], "RELAY_TOKEN_FILE /nonexistent cannot"),
]
"""A variable, a bad value, the command, and what its one line of error says."""


@pytest.mark.parametrize(("variable", "value", "argv", "says"), BAD_VALUES)
def test_bad_configuration_is_one_line_and_status_2(
    variable: str, value: str, argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad value exits 2 with one line naming the variable and the problem, no traceback."""
    os.environ[variable] = value
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("nodeview config check: ")
    assert says in err
    assert "Traceback" not in err


def test_every_problem_gets_its_own_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Several bad values give one line each, and a problem shared by roles is said once."""
    os.environ.update({"API_PORT": "abc", "LOG_LEVEL": "verbose", "NATS_STREAM_REPLICAS": "9"})
    code, _, err = _run(["config", "check"], capsys)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 3
    assert [line.split(": ")[1] for line in lines] == [
        "LOG_LEVEL",
        "NATS_STREAM_REPLICAS",
        "API_PORT",
    ]


def test_a_bad_flag_is_named_as_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad value given as a flag names the flag and the variable it stands for."""
    code, _, err = _run(["config", "check", "api", "--api-port", "99999"], capsys)
    assert code == 2
    assert err == (
        "nodeview config check: --api-port (API_PORT): input should be less than or equal to "
        "65535 (got '99999')\n"
    )


@pytest.mark.parametrize(
    ("argv", "variable", "value"),
    [
        (["api"], "API_PORT", "abc"),
        (["enricher"], "CONSUL_SERVERS", "::bad"),
        (["relay", "watch"], "LOG_LEVEL", "verbose"),
        (["relay", "handle", "--type", "nodes"], "CONSUL_SERVERS", "::bad"),
    ],
)
def test_a_role_with_bad_configuration_does_not_start(
    argv: list[str], variable: str, value: str
) -> None:
    """The real entry point exits 2 with one line for a bad setting, before starting anything."""
    result = subprocess.run(
        [str(NODEVIEW), *argv],
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        line for line in result.stderr.splitlines() if line.startswith(f"nodeview {argv[0]}")
    ]
    assert len(result.stderr.splitlines()) == 1
    assert f": {variable}: " in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_near_miss_names_are_warned_with_the_likely_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A mistyped variable of nodeview's prefixes names the one probably meant; others are quiet."""
    os.environ.update(
        {
            "CONSUL_SERVER": "http://127.0.0.1:8500",
            "API_PROT": "9000",
            "CONSUL_HTTP_AUTH": "ops:pw",  # Consul's own, for the consul CLI
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318",  # the SDK's
            "HOME_DIRECTORY": "x",  # not ours
        }
    )
    code, _, err = _run(["config", "check", "api"], capsys)
    assert code == 0
    assert err.splitlines() == [
        "nodeview config check: warning: API_PROT is not a nodeview setting; "
        "did you mean API_PORT?",
        "nodeview config check: warning: CONSUL_SERVER is not a nodeview setting; "
        "did you mean CONSUL_SERVERS?",
    ]


def test_near_misses_know_every_role_and_ignore_far_names() -> None:
    """A variable of another role is known; a name far from every known one is not warned."""
    known = known_variables([ApiSettings, RelaySettings, EnricherSettings, DevSettings])
    environ = {
        "RELAY_PORT": "1",
        "ENRICHER_LOCK_TTL": "5",
        "NODEVIEW_DEV_NODES": "3",
        "CONSUL_SOMETHING_ELSE": "x",
        "ENRICHER_BATCH_SIZ": "3",
        "CONSUL_CA_CERT": "/ca.pem",
    }
    assert near_misses(environ, known) == [
        "warning: CONSUL_CA_CERT is not a nodeview setting; did you mean CONSUL_CACERT?",
        "warning: ENRICHER_BATCH_SIZ is not a nodeview setting; did you mean ENRICHER_BATCH_SIZE?",
    ]
