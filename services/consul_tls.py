"""TLS towards Consul: the CA, a client certificate and key, and the name servers must prove."""

import socket
import ssl
from pathlib import Path
from typing import Any


class ConsulTlsError(ValueError):
    """A TLS file of the Consul settings cannot be used (missing, unreadable, mismatched)."""


class _ServerNameContext(ssl.SSLContext):
    """An SSLContext that checks, and sends as SNI, one fixed name whatever address is dialled.

    Consul's servers carry certificates for names such as ``server.dc1.consul``, not for the
    addresses nodeview dials: ``CONSUL_TLS_SERVER_NAME`` names what the certificate must hold.
    """

    server_name = ""

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        """Wrap a BIO pair for the fixed server name (what the async transport uses)."""
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name, session)

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        """Wrap a socket for the fixed server name (what a synchronous transport uses)."""
        return super().wrap_socket(
            sock,
            server_side,
            do_handshake_on_connect,
            suppress_ragged_eofs,
            self.server_name,
            session,
        )


def consul_tls(
    *,
    verify: bool,
    ca_file: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
    server_name: str | None,
) -> ssl.SSLContext | bool:
    """Return httpx's ``verify`` for Consul: ``True``/``False``, or a context built from the files.

    Raises ConsulTlsError, naming the variable, when a file cannot be read or the key does not
    match the certificate.
    """
    if ca_file is None and client_cert is None and server_name is None:
        return verify
    context: ssl.SSLContext
    if server_name:
        named = _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
        named.server_name = server_name
        context = named
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file is not None:
        _load(
            context.load_verify_locations,
            "CONSUL_CA_FILE / CONSUL_CACERT",
            ca_file,
            cafile=str(ca_file),
        )
    else:
        context.load_default_certs()
    if client_cert is not None and client_key is not None:
        _load(
            context.load_cert_chain,
            "CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY",
            client_cert,
            certfile=str(client_cert),
            keyfile=str(client_key),
        )
    return context


def _load(method: Any, names: str, path: Path, **kwargs: str) -> None:
    """Call a loading method of an SSLContext; turn its errors into one that names the setting."""
    try:
        method(**kwargs)
    except FileNotFoundError as exc:
        raise ConsulTlsError(f"{names}: {exc.filename or path} does not exist") from exc
    except ssl.SSLError as exc:
        raise ConsulTlsError(f"{names}: {path} is not usable ({exc.reason or exc})") from exc
    except OSError as exc:
        raise ConsulTlsError(f"{names}: {path} cannot be read: {exc.strerror}") from exc
