"""Client TLS towards Consul: an HTTPS server that requires a client certificate."""

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.config import ConsulSettings
from services.consul import ConsulClient, ConsulUnavailable

pytestmark = pytest.mark.timeout(60)

SERVER_NAME = "server.dc1.consul"
"""The only name on the server's certificate, as Consul's own certificates are made."""

ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 1\r\n"
    b"Content-Length: 2\r\nConnection: close\r\n\r\n[]"
)


@dataclass(frozen=True)
class Pki:
    """A throwaway CA with a server and a client certificate, as PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _issue(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    usage: x509.ObjectIdentifier,
    san: list[x509.GeneralName],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Generate the CA, the server's certificate for SERVER_NAME and a client certificate."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("nodeview test CA"))
        .issuer_name(_name("nodeview test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server, server_key = _issue(
        ca, ca_key, SERVER_NAME, ExtendedKeyUsageOID.SERVER_AUTH, [x509.DNSName(SERVER_NAME)]
    )
    client, client_key = _issue(ca, ca_key, "nodeview", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(server.public_bytes(pem))
    (folder / "client.pem").write_bytes(client.public_bytes(pem))
    return Pki(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=_write_key(server_key, folder / "server-key.pem"),
        client_cert=folder / "client.pem",
        client_key=_write_key(client_key, folder / "client-key.pem"),
    )


@dataclass
class TlsConsul:
    """An HTTPS server on 127.0.0.1 that answers ``[]`` only to a client with a certificate."""

    port: int
    server_names: list[str | None] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)
    """Common names of the client certificates of the requests it answered."""


@pytest.fixture
async def tls_consul(pki: Pki) -> AsyncIterator[TlsConsul]:
    """Serve HTTPS with ``verify_incoming``: a client certificate signed by the CA is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    state = TlsConsul(port=0)

    def remember_name(_: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
        state.server_names.append(name)

    context.sni_callback = remember_name

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            peer = writer.get_extra_info("peercert") or {}
            subject = dict(item[0] for item in peer.get("subject", ()))
            state.clients.append(str(subject.get("commonName", "")))
            writer.write(ANSWER)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


def _settings(consul: TlsConsul, **env: str) -> ConsulSettings:
    return ConsulSettings.model_validate(
        {
            "CONSUL_HTTP_ADDR": f"https://127.0.0.1:{consul.port}",
            "CONSUL_MAX_RETRIES": "0",
            "CONSUL_CATALOG_TIMEOUT": "10",
            **env,
        }
    )


async def test_client_certificate_reaches_a_consul_that_requires_one(
    pki: Pki, tls_consul: TlsConsul
) -> None:
    """With CONSUL_CACERT, CONSUL_CLIENT_CERT/KEY and CONSUL_TLS_SERVER_NAME the read succeeds."""
    settings = _settings(
        tls_consul,
        CONSUL_CACERT=str(pki.ca),
        CONSUL_CLIENT_CERT=str(pki.client_cert),
        CONSUL_CLIENT_KEY=str(pki.client_key),
        CONSUL_TLS_SERVER_NAME=SERVER_NAME,
    )
    settings.check_files()
    async with ConsulClient(settings) as consul:
        response = await consul.members()
    assert response.data == []
    assert tls_consul.clients == ["nodeview"]
    assert tls_consul.server_names == [SERVER_NAME]


async def test_without_a_client_certificate_the_read_fails(pki: Pki, tls_consul: TlsConsul) -> None:
    """Without CONSUL_CLIENT_CERT/KEY the server ends the handshake: no answer, a named failure."""
    settings = _settings(tls_consul, CONSUL_CACERT=str(pki.ca), CONSUL_TLS_SERVER_NAME=SERVER_NAME)
    async with ConsulClient(settings) as consul:
        with pytest.raises(ConsulUnavailable, match=r"/v1/agent/members \(last: connect_error\)"):
            await consul.members()
    assert tls_consul.clients == []


async def test_without_the_server_name_the_certificate_is_refused(
    pki: Pki, tls_consul: TlsConsul
) -> None:
    """The server's certificate names SERVER_NAME, not 127.0.0.1: without the name, no read."""
    settings = _settings(
        tls_consul,
        CONSUL_CACERT=str(pki.ca),
        CONSUL_CLIENT_CERT=str(pki.client_cert),
        CONSUL_CLIENT_KEY=str(pki.client_key),
    )
    async with ConsulClient(settings) as consul:
        with pytest.raises(ConsulUnavailable, match="connect_error"):
            await consul.members()
    assert tls_consul.clients == []


async def test_without_the_ca_the_server_is_not_trusted(pki: Pki, tls_consul: TlsConsul) -> None:
    """Without CONSUL_CACERT the system's CAs do not vouch for the test CA: no read."""
    settings = _settings(
        tls_consul,
        CONSUL_CLIENT_CERT=str(pki.client_cert),
        CONSUL_CLIENT_KEY=str(pki.client_key),
        CONSUL_TLS_SERVER_NAME=SERVER_NAME,
    )
    async with ConsulClient(settings) as consul:
        with pytest.raises(ConsulUnavailable, match="connect_error"):
            await consul.members()
    assert tls_consul.clients == []
