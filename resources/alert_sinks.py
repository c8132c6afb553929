"""Where alerts go: a JSONL file, a generic JSON webhook, or a Slack incoming webhook.

An alert is a dict shaped like a `metrics.alerts` row (dt, rule, severity, group_key, value,
baseline, message) plus its `dedupe_key`. Webhooks retry connection errors, timeouts, 429 and 5xx
with exponential back-off and send the dedupe key as `Idempotency-Key`, so a receiver that failed
after storing can drop the repeat. URLs are secrets: they only come from the environment through
`dg.EnvVar` (`alert_sinks_from_env`).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import abstractmethod
from pathlib import Path

import dagster as dg

RETRIED_STATUSES = {429, 500, 502, 503, 504}


class AlertDeliveryError(RuntimeError):
    """A sink could not deliver an alert after all its attempts."""


class AlertSink(dg.ConfigurableResource):
    @abstractmethod
    def send(self, alert: dict) -> None:
        """Deliver one alert, or raise AlertDeliveryError."""


class FileSink(AlertSink):
    """Appends one JSON object per alert to a local file."""

    path: str

    def send(self, alert: dict) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(alert, default=str) + "\n")


class WebhookSink(AlertSink):
    """POSTs the alert as JSON."""

    url: str
    timeout_seconds: float = 5.0
    max_attempts: int = 4
    backoff_seconds: float = 0.5

    def payload(self, alert: dict) -> dict:
        return alert

    def send(self, alert: dict) -> None:
        url = urllib.parse.urlsplit(self.url)
        if url.scheme not in ("http", "https") or not url.netloc:
            # urllib's own error would quote the URL, and a webhook URL is a secret
            raise AlertDeliveryError(f"alert {alert.get('dedupe_key')} not sent: the webhook URL is not an "
                                     "http(s) URL with a host (its value is secret and not shown)")
        body = json.dumps(self.payload(alert), default=str).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(alert.get("dedupe_key", ""))}
        problem = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            try:
                request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout_seconds):
                    return
            except urllib.error.HTTPError as error:
                problem = f"HTTP {error.code}"
                if error.code not in RETRIED_STATUSES:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                problem = str(getattr(error, "reason", error))
            if attempt < self.max_attempts:
                time.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        raise AlertDeliveryError(f"alert {alert.get('dedupe_key')} not delivered to the webhook after "
                                 f"{attempt} attempt(s): {problem}")


class SlackSink(WebhookSink):
    """Slack's incoming-webhook format: a fallback `text` and a section block."""

    def payload(self, alert: dict) -> dict:
        icon = ":rotating_light:" if alert.get("severity") == "critical" else ":warning:"
        title = f"{icon} *{alert.get('rule')}* ({alert.get('severity')}) on {alert.get('dt')}"
        detail = f"{alert.get('message')}\n`{alert.get('group_key')}`: {alert.get('value')} (baseline {alert.get('baseline')})"
        return {"text": f"{alert.get('rule')}: {alert.get('message')}",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"{title}\n{detail}"}}]}


class AlertRouter(dg.ConfigurableResource):
    """The sinks in use: any of a JSONL file, a webhook and a Slack webhook (none configured: no sink)."""

    file_path: str | None = None
    webhook_url: str | None = None
    slack_webhook_url: str | None = None

    def sinks(self) -> list[AlertSink]:
        sinks: list[AlertSink] = []
        if self.file_path:
            sinks.append(FileSink(path=self.file_path))
        if self.webhook_url:
            sinks.append(WebhookSink(url=self.webhook_url))
        if self.slack_webhook_url:
            sinks.append(SlackSink(url=self.slack_webhook_url))
        return sinks


def alert_router_from_env() -> AlertRouter:
    """TELEMETRY_ALERT_FILE, TELEMETRY_ALERT_WEBHOOK_URL, TELEMETRY_ALERT_SLACK_WEBHOOK_URL; the URLs
    are secrets, read only through dg.EnvVar (resolved when Dagster initialises the resource)."""
    secret = lambda name: dg.EnvVar(name) if os.environ.get(name) else None
    return AlertRouter(file_path=os.environ.get("TELEMETRY_ALERT_FILE"),
                       webhook_url=secret("TELEMETRY_ALERT_WEBHOOK_URL"),
                       slack_webhook_url=secret("TELEMETRY_ALERT_SLACK_WEBHOOK_URL"))
