"""Alert sinks against a real HTTP receiver on 127.0.0.1, started by the test."""

import json
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest

from resources.alert_sinks import AlertDeliveryError, FileSink, SlackSink, WebhookSink, alert_router_from_env
from telemetry_assets.analytics.alerts import AlertLedger, deliver

DAY_RANGE = (date(2026, 9, 14), date(2026, 9, 14))
ALERT = {"dt": "2026-09-14", "rule": "p95_latency_regression", "severity": "critical",
         "group_key": "gpt-4.1-mini/v8/variant_b", "value": 3199.0, "baseline": 1828.0,
         "message": "p95 latency 1,828 ms -> 3,199 ms after gpt-4.1-mini", "dedupe_key": "p95|variant_b|2026-09-14"}


class Receiver:
    """Records POSTs; answers the first `failures` with `failure_status` and sleeps `delay` seconds first."""

    def __init__(self, failures=0, delay=0.0, failure_status=500):
        self.failures, self.delay, self.failure_status, self.received, self.attempts = failures, delay, failure_status, [], 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                receiver.attempts += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(receiver.delay)
                if receiver.attempts <= receiver.failures:
                    self.send_response(receiver.failure_status)
                else:
                    receiver.received.append((dict(self.headers), body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(**options):
        made.append(Receiver(**options))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_the_webhook_gets_the_alert_as_json_with_its_dedupe_key(receiver):
    server = receiver()
    WebhookSink(url=server.url).send(ALERT)
    ((headers, body),) = server.received
    assert body == ALERT and headers["Idempotency-Key"] == ALERT["dedupe_key"]


def test_slack_gets_its_incoming_webhook_format(receiver):
    server = receiver()
    SlackSink(url=server.url).send(ALERT)
    ((_, body),) = server.received
    assert body["text"].startswith("p95_latency_regression: p95 latency")
    (block,) = body["blocks"]
    assert block["type"] == "section" and block["text"]["type"] == "mrkdwn" and "3199.0" in block["text"]["text"]


def test_a_receiver_that_fails_twice_then_succeeds_gets_exactly_one_alert(receiver):
    server = receiver(failures=2)
    WebhookSink(url=server.url, backoff_seconds=0.01).send(ALERT)
    assert server.attempts == 3 and len(server.received) == 1


def test_a_receiver_that_never_answers_in_time_is_a_clear_error_after_the_last_attempt(receiver):
    server = receiver(delay=0.5)
    sink = WebhookSink(url=server.url, timeout_seconds=0.1, max_attempts=2, backoff_seconds=0.01)
    with pytest.raises(AlertDeliveryError, match="after 2 attempt"):
        sink.send(ALERT)


def test_a_client_error_is_not_retried(receiver):
    server = receiver(failures=99, failure_status=404)
    with pytest.raises(AlertDeliveryError, match="after 1 attempt.*HTTP 404"):
        WebhookSink(url=server.url, backoff_seconds=0.01, max_attempts=3).send(ALERT)
    assert server.attempts == 1


def test_the_file_sink_appends_one_json_line_per_alert(tmp_path):
    sink = FileSink(path=str(tmp_path / "alerts" / "alerts.jsonl"))
    sink.send(ALERT)
    sink.send({**ALERT, "dedupe_key": "other"})
    lines = (tmp_path / "alerts" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line)["dedupe_key"] for line in lines] == [ALERT["dedupe_key"], "other"]


def test_sink_urls_come_from_the_environment_through_envvar(monkeypatch, receiver):
    server = receiver()
    monkeypatch.setenv("TELEMETRY_ALERT_SLACK_WEBHOOK_URL", server.url)
    monkeypatch.delenv("TELEMETRY_ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("TELEMETRY_ALERT_FILE", raising=False)
    router = alert_router_from_env()
    assert router.slack_webhook_url == "TELEMETRY_ALERT_SLACK_WEBHOOK_URL"  # unresolved until Dagster initialises it
    (sink,) = router.process_config_and_initialize().sinks()
    assert isinstance(sink, SlackSink)
    sink.send(ALERT)
    assert len(server.received) == 1


def alerts_of_the_day(*groups: str):
    """A warehouse whose `metrics.alerts` holds one alert of rule `r` per group, keyed `r|<group>`."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA metrics")
    con.execute("""CREATE TABLE metrics.alerts AS SELECT DATE '2026-09-14' AS dt, 'r' AS rule, 'critical' AS severity,
                   g AS group_key, 1.0 AS value, 0.5 AS baseline, 'm' AS message, 'r|' || g AS dedupe_key
                   FROM unnest(?) AS t(g)""", [list(groups)])
    return con


def test_an_alert_a_sink_could_not_take_is_retried_on_the_next_delivery(tmp_path, receiver):
    con = alerts_of_the_day("g")
    ledger = AlertLedger(tmp_path / "sent.txt")
    down = receiver(failures=99)
    with pytest.raises(AlertDeliveryError):
        deliver(con, [WebhookSink(url=down.url, max_attempts=2, backoff_seconds=0.01)], ledger, *DAY_RANGE)
    assert ledger.sent() == set()
    up = receiver()
    assert [a["dedupe_key"] for a in deliver(con, [WebhookSink(url=up.url)], ledger, *DAY_RANGE)] == ["r|g"]
    assert deliver(con, [WebhookSink(url=up.url)], ledger, *DAY_RANGE) == [] and len(up.received) == 1


def test_alerts_found_with_no_sink_are_recorded_so_a_sink_added_later_gets_only_new_ones(tmp_path, receiver):
    con = alerts_of_the_day("old")
    ledger = AlertLedger(tmp_path / "sent.txt")
    assert [a["dedupe_key"] for a in deliver(con, [], ledger, *DAY_RANGE)] == ["r|old"]  # listed, sent nowhere
    con.execute("INSERT INTO metrics.alerts "
                "SELECT dt, rule, severity, 'new', value, baseline, message, 'r|new' FROM metrics.alerts")
    sink = receiver()
    assert [a["dedupe_key"] for a in deliver(con, [WebhookSink(url=sink.url)], ledger, *DAY_RANGE)] == ["r|new"]
    assert [body["dedupe_key"] for _, body in sink.received] == ["r|new"]


def test_a_failed_run_is_sent_as_an_alert(tmp_path):
    import dagster as dg

    from resources.alert_sinks import AlertRouter
    from telemetry_assets.defs.schedules import run_failure_alert

    @dg.op
    def broken():
        raise RuntimeError("warehouse unreachable")

    @dg.job
    def nightly():
        broken()

    instance = dg.DagsterInstance.ephemeral()
    result = nightly.execute_in_process(instance=instance, raise_on_error=False)
    (failure,) = [e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE"]
    outbox = tmp_path / "alerts.jsonl"
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert", dagster_event=failure, dagster_instance=instance,
        dagster_run=result.dagster_run, resources={"alert_router": AlertRouter(file_path=str(outbox))},
    ).for_run_failure()
    run_failure_alert(context)
    (alert,) = [json.loads(line) for line in outbox.read_text().splitlines()]
    assert alert["rule"] == "run_failed" and alert["group_key"] == "nightly" and alert["severity"] == "critical"
    assert alert["dedupe_key"] == f"run_failed|{result.run_id}"


@pytest.mark.parametrize("url", ["hooks.slack.com/services/T000/B000/SECRET", "https:///services/SECRET",
                                 "ftp://hooks.example.com/SECRET"])
def test_a_webhook_url_that_is_not_http_is_a_clear_error_that_keeps_the_url_secret(url):
    for sink in (WebhookSink(url=url), SlackSink(url=url)):
        with pytest.raises(AlertDeliveryError, match="not an http\\(s\\) URL with a host") as refused:
            sink.send(ALERT)
        assert "SECRET" not in str(refused.value)
