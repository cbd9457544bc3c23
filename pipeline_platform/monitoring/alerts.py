"""Alerts: a Slack-compatible webhook post and an optional e-mail, at most one per hour per cause.

An :class:`Alert` names its *subject* (a table, a pipeline or a job) and its *cause* (a run
failure, a check name); :class:`Throttle` lets one alert per (subject, cause) through per hour,
so a table that keeps failing does not flood the channel. :func:`deliver` never raises: a
failing target becomes a one-line problem in which the webhook URL and the SMTP password are
replaced by ``***`` (they carry secrets).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import quote, unquote, urlsplit

from pipeline_platform.config import AlertSettings

#: Seconds during which a second alert with the same subject and cause is suppressed.
SUPPRESS_SECONDS = 3600.0
WEBHOOK_TIMEOUT_SECONDS = 5.0
SMTP_TIMEOUT_SECONDS = 10.0
#: Wall time per sensor call after which no further alert is started (sensor timeout: 60 s).
TICK_BUDGET_SECONDS = 25.0
_MAX_DETAIL = 300


@dataclass(frozen=True)
class Alert:
    """One thing to tell someone about.

    Attributes:
        subject: What failed: an asset key (``warehouse/orders``), a pipeline or a job name.
        cause: Why: ``run failure`` or the name of the check that turned ERROR.
        text: The message (first line is the summary, used as the e-mail subject).
        url: Link to the run or asset in the Dagster UI, when ``PIPELINE_DAGSTER_URL`` is set.
    """

    subject: str
    cause: str
    text: str
    url: str | None = None

    @property
    def key(self) -> str:
        """The storm-suppression key: subject and cause."""
        return f"{self.subject}|{self.cause}"

    def message(self) -> str:
        """Return the text with the link appended."""
        return f"{self.text}\n{self.url}" if self.url else self.text


def run_url(settings: AlertSettings, run_id: str) -> str | None:
    """Return the UI link of a run, or None without ``PIPELINE_DAGSTER_URL``."""
    return f"{settings.dagster_url}/runs/{run_id}" if settings.dagster_url else None


def asset_url(settings: AlertSettings, path: Sequence[str], checks: bool = False) -> str | None:
    """Return the UI link of an asset (its checks tab with ``checks``), or None."""
    if not settings.dagster_url:
        return None
    link = f"{settings.dagster_url}/assets/{'/'.join(quote(part, safe='') for part in path)}"
    return f"{link}?view=checks" if checks else link


def one_line(text: str | None, limit: int = _MAX_DETAIL) -> str:
    """Return the first line of ``text``, cut to ``limit`` characters."""
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return first if len(first) <= limit else f"{first[: limit - 1]}…"


@dataclass
class Throttle:
    """When each (subject, cause) was last alerted, as epoch seconds; at most one per hour.

    Serialised as JSON (``dumps`` / ``loads``) in the Dagster instance's key-value store.
    """

    sent: dict[str, float] = field(default_factory=dict)
    window: float = SUPPRESS_SECONDS

    def due(self, key: str, now: float) -> bool:
        """Whether an alert with ``key`` may go out at ``now``."""
        last = self.sent.get(key)
        return last is None or now - last >= self.window

    def record(self, key: str, now: float) -> None:
        """Note that an alert with ``key`` went out at ``now``; forget entries past the window."""
        self.sent[key] = now
        self.sent = {k: t for k, t in self.sent.items() if now - t < self.window}

    def dumps(self) -> str:
        """Return the state as JSON."""
        return json.dumps(self.sent, sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> Throttle:
        """Return the state stored as JSON (empty when missing or unreadable)."""
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        return cls({str(k): float(v) for k, v in data.items() if isinstance(v, int | float)})


def redact(text: str, secrets: Sequence[str]) -> str:
    """Return ``text`` with every secret (and its URL-decoded form) replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        for form in {secret, unquote(secret)}:
            if form:
                text = text.replace(form, "***")
    return text


def post_webhook(url: str, alert: Alert, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> None:
    """POST ``{"text": ...}`` (Slack incoming-webhook format) to ``url``.

    Raises:
        OSError: The server is unreachable or answers with an HTTP error status.
    """
    from urllib.request import Request, urlopen

    if urlsplit(url).scheme not in ("http", "https"):
        raise OSError("PIPELINE_ALERT_WEBHOOK_URL must be an http:// or https:// URL")
    body = json.dumps({"text": alert.message()}).encode()
    request = Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urlopen(request, timeout=timeout) as response:
        response.read()


def send_email(
    settings: AlertSettings, alert: Alert, timeout: float = SMTP_TIMEOUT_SECONDS
) -> None:
    """Send the alert by e-mail through ``PIPELINE_ALERT_SMTP_URL`` to ``PIPELINE_ALERT_EMAIL_TO``.

    ``smtps://`` connects with TLS; ``smtp://`` upgrades with STARTTLS when the server offers
    it. The server's certificate is verified against the system's certificate authorities
    (a private one: point the standard ``SSL_CERT_FILE`` at it). The user and password of the
    URL (percent-decoded) log in when given, and only over TLS unless the server is on this
    machine (a local relay).

    Raises:
        OSError: Delivery failed (``smtplib.SMTPException`` and ``ssl.SSLError`` are
            ``OSError``), or the password would have crossed the network in clear text.
    """
    import smtplib
    import ssl

    assert settings.smtp_url is not None
    parts = urlsplit(settings.smtp_url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise OSError("PIPELINE_ALERT_SMTP_URL must look like smtp://user:password@host:port")
    message = EmailMessage()
    message["Subject"] = f"[pipeline-platform] {one_line(alert.text, 150)}"
    message["From"] = settings.email_from
    message["To"] = ", ".join(settings.email_to)
    message.set_content(alert.message())
    secure = parts.scheme == "smtps"
    port = parts.port or (465 if secure else 25)
    tls = ssl.create_default_context()
    client: smtplib.SMTP = (
        smtplib.SMTP_SSL(parts.hostname, port, timeout=timeout, context=tls)
        if secure
        else smtplib.SMTP(parts.hostname, port, timeout=timeout)
    )
    with client:
        client.ehlo()
        if not secure and client.has_extn("starttls"):
            client.starttls(context=tls)
            client.ehlo()
            secure = True
        if parts.username:
            if not secure and not _on_this_machine(parts.hostname):
                raise OSError(
                    f"the SMTP server {parts.hostname}:{port} offers no STARTTLS: the password "
                    "is not sent in clear text (use smtps:// or a server with STARTTLS)"
                )
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)


def _on_this_machine(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (a local relay needs no TLS)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Sends one alert to one target (for tests: ``{"webhook": ..., "email": ...}``).
Sender = Callable[[AlertSettings, Alert], None]

DEFAULT_SENDERS: Mapping[str, Sender] = {
    "webhook": lambda settings, alert: post_webhook(str(settings.webhook_url), alert),
    "email": send_email,
}


def deliver(
    settings: AlertSettings,
    alert: Alert,
    senders: Mapping[str, Sender] = DEFAULT_SENDERS,
) -> list[str]:
    """Send an alert to every configured target; never raise.

    Args:
        settings: The alert targets.
        alert: What to send.
        senders: The sending functions by target.

    Returns:
        One line per target that failed, with secrets redacted (empty when all went out).
    """
    targets = []
    if settings.webhook_url:
        targets.append("webhook")
    if settings.email_enabled:
        targets.append("email")
    problems = []
    for target in targets:
        try:
            senders[target](settings, alert)
        except Exception as error:  # a dead target must never break the caller
            detail = redact(one_line(str(error), 200), settings.secrets())
            problems.append(
                f"alert {target} for {alert.subject} ({alert.cause}) failed: "
                f"{type(error).__name__}{': ' + detail if detail else ''}"
            )
    return problems


def send_throttled(
    settings: AlertSettings,
    alerts: Sequence[Alert],
    throttle: Throttle,
    *,
    now: float | None = None,
    senders: Mapping[str, Sender] = DEFAULT_SENDERS,
    budget_seconds: float = TICK_BUDGET_SECONDS,
) -> tuple[list[Alert], list[str]]:
    """Deliver the alerts the throttle lets through and record them.

    An alert whose delivery failed is still recorded (a dead webhook is not retried every
    tick for an hour: the warning in the sensor log says it failed). Sending stops once
    ``budget_seconds`` have passed (slow targets), leaving the rest, unrecorded, to the next
    tick, so a sensor tick stays well inside Dagster's sensor timeout.

    Args:
        settings: The alert targets.
        alerts: Candidate alerts.
        throttle: Storm-suppression state, updated in place.
        now: Current epoch seconds (``time.time()`` by default).
        senders: The sending functions by target.
        budget_seconds: Wall time after which no further alert is started.

    Returns:
        The alerts sent and the one-line problems of failed deliveries.
    """
    moment = time.time() if now is None else now
    started = time.monotonic()
    sent: list[Alert] = []
    problems: list[str] = []
    for alert in alerts:
        if not throttle.due(alert.key, moment):
            continue
        if time.monotonic() - started > budget_seconds:
            problems.append("alert time budget of this tick spent; the rest go on the next tick")
            break
        problems.extend(deliver(settings, alert, senders))
        throttle.record(alert.key, moment)
        sent.append(alert)
    return sent, problems
