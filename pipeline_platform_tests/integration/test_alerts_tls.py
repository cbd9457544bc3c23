"""Alert e-mail over TLS: real aiosmtpd servers with STARTTLS and implicit TLS on loopback.

The client verifies the server's certificate (a self-signed one, trusted through the standard
``SSL_CERT_FILE``) and never sends the SMTP password in clear text to another machine.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pipeline_platform.config import AlertSettings
from pipeline_platform.monitoring.alerts import Alert, deliver, send_email
from pipeline_platform_tests.alert_servers import self_signed_certificate, smtp_server

PASSWORD = "tls-p@ss"
ALERT = Alert(
    subject="warehouse/orders",
    cause="run failure",
    text="Run failed: job ingestion (warehouse/orders)",
    url="http://dagster/runs/1",
)


def settings(url: str) -> AlertSettings:
    return AlertSettings(smtp_url=url, email_to=("ops@example.test",))


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


@pytest.mark.parametrize(("tls", "scheme"), [("starttls", "smtp"), ("implicit", "smtps")])
def test_mail_goes_over_verified_tls(
    tls: str, scheme: str, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with smtp_server("alerts", PASSWORD, tls=tls, certificate=certificate) as (port, mails):
        url = f"{scheme}://alerts:{PASSWORD.replace('@', '%40')}@localhost:{port}"
        send_email(settings(url), ALERT)
    [mail] = mails
    assert mail["X-TLS"] == "yes"
    assert mail["To"] == "ops@example.test" and "Run failed" in mail["Subject"]


@pytest.mark.parametrize(("tls", "scheme"), [("starttls", "smtp"), ("implicit", "smtps")])
def test_an_untrusted_certificate_stops_the_mail_and_names_no_secret(
    tls: str, scheme: str, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with smtp_server("alerts", PASSWORD, tls=tls, certificate=certificate) as (port, mails):
        url = f"{scheme}://alerts:{PASSWORD.replace('@', '%40')}@localhost:{port}"
        problems = deliver(settings(url), ALERT)
    assert mails == []
    [problem] = problems
    assert "certificate verify failed" in problem
    assert PASSWORD not in problem and "tls-p" not in problem and "\n" not in problem


def test_no_password_in_clear_text_to_another_host() -> None:
    """A server without STARTTLS: a local relay gets the login, a named host does not."""
    with smtp_server("alerts", PASSWORD, hostname="0.0.0.0") as (port, mails):
        send_email(settings(f"smtp://alerts:{PASSWORD}@127.0.0.1:{port}"), ALERT)
        assert len(mails) == 1 and mails[0]["X-TLS"] == "no"
        host = socket.gethostname()  # resolves to an address of this machine, not a loopback name
        with pytest.raises(OSError, match="offers no STARTTLS: the password is not sent") as err:
            send_email(settings(f"smtp://alerts:{PASSWORD}@{host}:{port}"), ALERT)
        assert PASSWORD not in str(err.value)
    assert len(mails) == 1
