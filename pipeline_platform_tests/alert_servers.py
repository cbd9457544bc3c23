"""Real alert receivers on loopback: an HTTP webhook server and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def webhook_server(status: int = 200) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Serve POSTs on loopback; yield the base URL and the list of received JSON bodies."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.append(
                {
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for ``localhost`` / ``127.0.0.1``; return (cert, key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def smtp_server(
    user: str,
    password: str,
    *,
    tls: str = "none",
    certificate: tuple[Path, Path] | None = None,
    hostname: str = "127.0.0.1",
) -> Iterator[tuple[int, list[Message]]]:
    """Run an SMTP server that accepts only ``user``/``password`` (AUTH LOGIN/PLAIN).

    Args:
        user: The one login accepted.
        password: Its password.
        tls: ``none`` (clear text), ``starttls`` (offered and required before AUTH) or
            ``implicit`` (TLS from the first byte, as ``smtps://``).
        certificate: ``(cert, key)`` files for TLS (see :func:`self_signed_certificate`).
        hostname: The address to listen on.

    Yields:
        The port and the list of received messages; each message has ``X-TLS: yes|no``.
    """
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    received: list[Message] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            message = message_from_bytes(envelope.original_content or envelope.content)
            message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
            encrypted = server.transport.get_extra_info("ssl_object") is not None
            message["X-TLS"] = "yes" if encrypted else "no"
            received.append(message)
            return "250 Message accepted for delivery"

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (user, password)
        return AuthResult(success=ok, handled=False)

    context = None
    if tls != "none":
        assert certificate is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*certificate)
    port = free_port()
    controller = Controller(
        Handler(),
        hostname=hostname,
        port=port,
        authenticator=authenticator,
        auth_require_tls=tls == "starttls",
        auth_required=True,
        require_starttls=tls == "starttls",
        tls_context=context if tls == "starttls" else None,
        ssl_context=context if tls == "implicit" else None,
    )
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()
