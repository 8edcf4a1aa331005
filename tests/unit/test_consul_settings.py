"""Consul's own variables beside nodeview's: addresses, tokens, TLS, namespace and partition."""

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from services.config import ConsulSettings, SettingsError
from services.consul import ConsulClient


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> ConsulSettings:
    """Read ConsulSettings from exactly these environment variables."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ConsulSettings()


@pytest.mark.parametrize(
    ("env", "servers"),
    [
        ({}, ["http://127.0.0.1:8500"]),
        ({"CONSUL_HTTP_SSL": "true"}, ["https://127.0.0.1:8500"]),
        ({"CONSUL_HTTP_ADDR": "consul.internal:8500"}, ["http://consul.internal:8500"]),
        ({"CONSUL_HTTP_ADDR": "https://consul.internal:8501"}, ["https://consul.internal:8501"]),
        (
            {"CONSUL_HTTP_ADDR": "consul.internal:8501", "CONSUL_HTTP_SSL": "1"},
            ["https://consul.internal:8501"],
        ),
        (
            {"CONSUL_HTTP_ADDR": "http://consul.internal:8500", "CONSUL_HTTP_SSL": "true"},
            ["https://consul.internal:8500"],
        ),
        (
            {"CONSUL_SERVERS": "http://a:8500,b:8500", "CONSUL_HTTP_ADDR": "https://c:8501"},
            ["http://a:8500", "http://b:8500"],
        ),
    ],
)
def test_servers_from_consul_http_addr_and_precedence(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], servers: list[str]
) -> None:
    """CONSUL_HTTP_ADDR (bare or with a scheme) is read; CONSUL_SERVERS wins when both are set."""
    assert _settings(monkeypatch, **env).consul_servers == servers


@pytest.mark.parametrize(
    "address", ["::bad", "unix:///run/consul.sock", "ftp://consul:21", "http://:8500", "h:port"]
)
def test_unusable_addresses_are_refused(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    """An address without a host, with a bad port or another scheme is a settings error."""
    with pytest.raises(ValidationError, match="CONSUL_SERVERS"):
        _settings(monkeypatch, CONSUL_HTTP_ADDR=address)


def test_token_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CONSUL_TOKEN(_FILE) wins; then CONSUL_HTTP_TOKEN_FILE over CONSUL_HTTP_TOKEN (as Consul)."""
    own_file = tmp_path / "own.token"
    own_file.write_text("own-file\n", encoding="utf-8")
    http_file = tmp_path / "http.token"
    http_file.write_text("http-file\n", encoding="utf-8")

    def token(**env: str) -> str | None:
        with monkeypatch.context() as scoped:
            value = _settings(scoped, **env).consul_token_value()
        return None if value is None else value.get_secret_value()

    assert token() is None
    assert token(CONSUL_HTTP_TOKEN_FILE=str(http_file)) == "http-file"
    assert token(CONSUL_HTTP_TOKEN="http", CONSUL_HTTP_TOKEN_FILE=str(http_file)) == "http-file"
    empty = tmp_path / "empty.token"
    empty.write_text("\n", encoding="utf-8")
    assert token(CONSUL_HTTP_TOKEN="http", CONSUL_HTTP_TOKEN_FILE=str(empty)) == "http"
    assert token(CONSUL_TOKEN="own", CONSUL_HTTP_TOKEN="http") == "own"
    assert token(CONSUL_TOKEN_FILE=str(own_file), CONSUL_HTTP_TOKEN="http") == "own-file"
    with pytest.raises(SettingsError, match="CONSUL_HTTP_TOKEN_FILE"):
        token(CONSUL_HTTP_TOKEN_FILE=str(tmp_path / "missing"))


def test_ca_and_verification_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    """CONSUL_CA_FILE and CONSUL_TLS_VERIFY win over CONSUL_CACERT and CONSUL_HTTP_SSL_VERIFY."""
    consul_only = _settings(monkeypatch, CONSUL_CACERT="/consul/ca.pem", CONSUL_HTTP_SSL_VERIFY="0")
    assert consul_only.consul_ca_file == Path("/consul/ca.pem")
    assert consul_only.consul_tls_verify is False
    both = _settings(monkeypatch, CONSUL_CA_FILE="/own/ca.pem", CONSUL_TLS_VERIFY="true")
    assert both.consul_ca_file == Path("/own/ca.pem")
    assert both.consul_tls_verify is True


def test_client_certificate_needs_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """CONSUL_CLIENT_CERT without CONSUL_CLIENT_KEY is refused, naming both."""
    with pytest.raises(ValidationError, match="CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY"):
        _settings(monkeypatch, CONSUL_CLIENT_CERT="/client.pem")


def test_unreadable_tls_files_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A missing or broken TLS file is a settings error that names its variables."""
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate", encoding="utf-8")
    missing = _settings(monkeypatch, CONSUL_CACERT=str(tmp_path / "missing.pem"))
    with pytest.raises(SettingsError, match=r"CONSUL_CA_FILE / CONSUL_CACERT: .* does not exist"):
        missing.check_files()
    with monkeypatch.context() as scoped:
        scoped.delenv("CONSUL_CACERT")
        unusable = _settings(scoped, CONSUL_CLIENT_CERT=str(broken), CONSUL_CLIENT_KEY=str(broken))
        with pytest.raises(SettingsError, match="CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY"):
            unusable.check_files()


@pytest.mark.parametrize(
    ("env", "params"),
    [
        ({}, {}),
        ({"CONSUL_NAMESPACE": "", "CONSUL_PARTITION": " "}, {}),
        ({"CONSUL_NAMESPACE": "team-a"}, {"ns": "team-a"}),
        ({"CONSUL_NAMESPACE": "*", "CONSUL_PARTITION": "eu"}, {"ns": "*", "partition": "eu"}),
    ],
)
def test_namespace_and_partition_parameters(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], params: dict[str, str]
) -> None:
    """CONSUL_NAMESPACE and CONSUL_PARTITION become ns= and partition=; empty means unset."""
    assert _settings(monkeypatch, **env).consul_query_params() == params


@pytest.mark.parametrize(
    ("name", "value"), [("CONSUL_NAMESPACE", "team_a"), ("CONSUL_PARTITION", "*")]
)
def test_bad_namespace_or_partition_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """A namespace or partition that is not a DNS label is refused (only ns may be *)."""
    with pytest.raises(ValidationError, match=name):
        _settings(monkeypatch, **{name: value})


async def test_namespace_and_partition_go_with_every_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every Consul request carries ns= and partition=, beside its own parameters."""
    seen: list[httpx.QueryParams] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params)
        return httpx.Response(200, json=[], headers={"X-Consul-Index": "7"})

    settings = _settings(
        monkeypatch,
        CONSUL_HTTP_ADDR="127.0.0.1:8500",
        CONSUL_NAMESPACE="team-a",
        CONSUL_PARTITION="eu",
        CONSUL_DATACENTER="dc2",
    )
    async with ConsulClient(settings, transport=httpx.MockTransport(answer)) as consul:
        await consul.members()
        await consul.catalog_nodes(index=5, wait=1.0)
        await consul.event_list("nodeview-resync")
        await consul.serf_health()
    assert len(seen) == 4
    assert all(p["ns"] == "team-a" and p["partition"] == "eu" for p in seen)
    assert all(p["dc"] == "dc2" for p in seen)
    assert seen[1]["index"] == "5"
    assert seen[2]["name"] == "nodeview-resync"
    assert seen[3]["filter"] == 'CheckID == "serfHealth"'
