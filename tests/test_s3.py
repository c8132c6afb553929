"""S3 as the lake (moto's server on 127.0.0.1): the same fixtures give the same tables as a local folder,
reads survive dropped connections, and a bucket or object that is not there fails saying which."""

import contextlib
import gzip
import hashlib
import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import boto3
import dagster as dg
import duckdb
import pytest
from botocore.exceptions import ClientError, ResponseStreamingError
from moto.server import ThreadedMotoServer

from checks.pii_leak import scan_exports
from resources.object_store import (
    ListedObject,
    LocalObjectStore,
    ObjectChangedError,
    S3ObjectStore,
    object_store_from_url,
)
from resources.secrets import GovernanceSecrets
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets.bench import run_bench_on_lake
from telemetry_assets.cli import main
from telemetry_assets.defs.ingest.assets import ingest_ai_events
from telemetry_assets.govern.erasure import Request, erase_people
from telemetry_assets.govern.safety import compute_safety
from telemetry_assets.ingest.lines import read_lines
from telemetry_assets.ingest.partition import ingest_partition
from telemetry_assets.ingest.tables import governed_table
from tests.builders import ai_call, gz, ndjson, page_call
from tests.conftest import DAY

FIXTURES = {
    "raw/ai_events/dt=2026-09-14/part-0.jsonl.gz": gz(ai_call(message_id="h1"), ai_call(message_id="dup"), "{oops"),
    "acme/rudder-logs/srcR/09-14-2026/1789380000.srcR.u1.json.gz": gz(
        ai_call(event="ai_user_action", message_id="r1"), page_call(), ai_call(message_id="dup")),
    "segment-logs/srcS/1789344000000/1789347600.srcS.u2.gz": gz(
        ai_call(event="ai_user_prompt_created", message_id="s1"), "", ai_call(latency_ms=-1)),
    "raw/ai_events/dt=2026-09-14/plain.jsonl": ndjson(ai_call(message_id="p1")),
    "raw/ai_events/dt=2026-09-15/other-day.jsonl.gz": gz(ai_call(message_id="tomorrow")),
}
TABLES = ("governed.ai_llm_response_received", "governed.ai_user_action", "governed.ai_user_prompt_created",
          "audit.quarantine", "audit.governance_log", "audit.ingest_files")


@pytest.fixture(scope="module")
def s3_endpoint():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_env(monkeypatch, s3_endpoint):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_endpoint


def make_bucket(name):
    boto3.client("s3").create_bucket(Bucket=name)


def ingested(store, tmp_path, name, plan, policy):
    """The day ingested from `store` into a warehouse and a secure store of their own, named `name`:
    (warehouse connection, secure store, report)."""
    con = duckdb.connect(str(tmp_path / f"{name}.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    secure = SecureStore(database=str(tmp_path / f"{name}-secure.duckdb"))
    return con, secure, ingest_partition(store, con, DAY, plan, policy, secure)


def tables_after_ingest(store, tmp_path, name, plan, policy):
    con, _, report = ingested(store, tmp_path, name, plan, policy)
    # an object's version is the store's own (an ETag, a size and modification time): compared apart
    rows = {table: f"SELECT * {'EXCLUDE (object_version)' if table == 'audit.ingest_files' else ''} FROM {table}"
            for table in TABLES}
    return report, {table: con.execute(f"{sql} ORDER BY ALL").fetchall() for table, sql in rows.items()}


def test_s3_and_local_folder_give_identical_tables(s3_env, tmp_path, plan, policy):
    make_bucket("lake-same")
    local = LocalObjectStore(root=str(tmp_path / "lake"))
    s3 = object_store_from_url("s3://lake-same/prod/events")  # endpoint from AWS_ENDPOINT_URL_S3
    for key, data in FIXTURES.items():
        local.put(key, data)
        s3.put(key, data)
    local_report, local_tables = tables_after_ingest(local, tmp_path, "local", plan, policy)
    s3_report, s3_tables = tables_after_ingest(s3, tmp_path, "s3", plan, policy)
    assert local_report.summary() == {"lines_read": 10, "valid_events": 5, "quarantined": 2, "duplicates": 1,
                                      "non_ai_events": 1, "erased_events": 0, "blank_lines": 1}
    assert {f.layout for f in s3_report.files} == {"hive", "rudderstack", "segment"}
    assert s3_tables == local_tables
    assert {f.source_key: f.object_version for f in s3_report.files} == {
        key: hashlib.md5(data).hexdigest() for key, data in FIXTURES.items() if key != "raw/ai_events/dt=2026-09-15/other-day.jsonl.gz"}
    assert without_versions(s3_report) == without_versions(local_report)


def without_versions(report):
    return replace(report, files=tuple(replace(f, object_version="") for f in report.files))


def test_bench_copies_a_day_out_of_s3_and_writes_nothing_back(s3_env):
    make_bucket("lake-bench")
    s3 = object_store_from_url("s3://lake-bench/prod/events")
    for key, data in FIXTURES.items():
        s3.put(key, data)
    s3.put("sources/support_tickets/dt=2026-09-14/tickets.csv", b"ticket_id,user_id,created_at\nt1,u1,2026-09-14T10:00:00Z\n")
    before = sorted(s3.list_keys(""))
    result = run_bench_on_lake("s3://lake-bench/prod/events", DAY)
    assert sorted(s3.list_keys("")) == before
    # 10 lines of the day: 5 valid, 2 quarantined and 1 duplicate AI-event lines, a page call, a blank line
    assert (result["lines"], result["events"], result["day"]) == (10, 8, "2026-09-14")
    assert result["copied_objects"] == 5  # the day's four raw objects and its tickets, not the next day's


def test_s3_listing_and_deleting_go_past_a_thousand_keys(s3_env):
    make_bucket("lake-many")
    store = S3ObjectStore(bucket="lake-many", prefix="p", retry_mode="adaptive")
    client = boto3.client("s3")
    for i in range(1_005):
        client.put_object(Bucket="lake-many", Key=f"p/exports/x/dt=2026-09-14/{i:05d}.jsonl", Body=b"")
    client.put_object(Bucket="lake-many", Key="p/exports/x/dt=2026-09-15/kept.jsonl", Body=b"")
    keys = list(store.list_keys("exports/x/dt=2026-09-14/"))
    assert len(keys) == 1_005 and keys[0] == "exports/x/dt=2026-09-14/00000.jsonl"
    store.delete_prefix("exports/x/dt=2026-09-14/")  # S3 deletes at most 1,000 keys a call
    assert list(store.list_keys("exports/")) == ["exports/x/dt=2026-09-15/kept.jsonl"]


def test_a_rerun_on_s3_replaces_the_days_exports_and_leaves_other_days(s3_env, tmp_path, plan, policy):
    make_bucket("lake-rerun")
    s3 = object_store_from_url("s3://lake-rerun/prod/events")
    for key, data in FIXTURES.items():
        s3.put(key, data)
    stale, other_day = ("exports/product_analytics/dt=2026-09-14/ai_user_action-09999.jsonl.gz",
                        "exports/product_analytics/dt=2026-09-13/ai_user_action-00001.jsonl.gz")
    for key in (stale, other_day):
        s3.put(key, gz({"message_id": "from an earlier run"}))
    tables_after_ingest(s3, tmp_path, "first", plan, policy)
    first = sorted(s3.list_keys("exports/"))
    tables_after_ingest(s3, tmp_path, "again", plan, policy)
    assert sorted(s3.list_keys("exports/")) == first
    assert stale not in first and other_day in first and len(first) > 1
    assert s3.describe() == "s3://lake-rerun/prod/events"


def test_s3_reads_stream_the_body(s3_env):
    make_bucket("lake-stream")
    store = S3ObjectStore(bucket="lake-stream")
    store.put("raw/x.jsonl", b"a\nb\n")
    body = store.open("raw/x.jsonl")
    assert body.read(2) == b"a\n" and body.read() == b"b\n"
    body.close()



class DroppingClient:
    """A boto3 client whose object bodies drop their connection after the given numbers of bytes,
    one number per GET; `on_drop` runs when one drops (to replace the object meanwhile)."""

    def __init__(self, client, drop_after: list[int], on_drop=lambda: None):
        self.client, self.drop_after, self.on_drop, self.ranges = client, list(drop_after), on_drop, []

    def get_object(self, **kwargs):
        self.ranges.append(kwargs.get("Range"))
        response = self.client.get_object(**kwargs)
        if self.drop_after:
            response["Body"] = DroppingBody(response["Body"], self.drop_after.pop(0), self.on_drop)
        return response

    def __getattr__(self, name):  # every other call goes to the real client
        return getattr(self.client, name)


class DroppingBody:
    def __init__(self, body, left: int, on_drop):
        self.body, self.left, self.on_drop = body, left, on_drop

    def read(self, size=-1):
        if self.left <= 0:
            self.on_drop()
            raise ResponseStreamingError(error="Connection broken: ConnectionResetError(104, 'Connection reset by peer')")
        data = self.body.read(min(size, self.left) if size >= 0 else self.left)
        self.left -= len(data)
        return data

    def close(self):
        self.body.close()


def dropping_store(monkeypatch, bucket, drop_after, on_drop=lambda: None):
    make_bucket(bucket)
    store = S3ObjectStore(bucket=bucket, max_attempts=3)
    client = DroppingClient(store._client(), drop_after, on_drop)
    monkeypatch.setattr(S3ObjectStore, "_client", lambda self: client)
    return store, client


def test_an_s3_read_whose_connection_drops_resumes_where_it_stopped(s3_env, monkeypatch):
    body = gz(*(ai_call(message_id=f"m{i}") for i in range(5_000)))
    third = len(body) // 3
    store, client = dropping_store(monkeypatch, "lake-drops", [third, third])
    store.put("raw/big.jsonl.gz", body)
    with contextlib.closing(store.open("raw/big.jsonl.gz")) as stream:
        lines = list(read_lines(stream))
    assert [line.text for line in lines] == gzip.decompress(body).decode().splitlines()
    assert client.ranges == [None, f"bytes={third}-", f"bytes={2 * third}-"]



def test_a_day_read_over_connections_that_keep_dropping_lands_what_a_folder_lands(s3_env, monkeypatch, tmp_path, plan, policy):
    local = LocalObjectStore(root=str(tmp_path / "lake"))
    s3, client = dropping_store(monkeypatch, "lake-dropping", [100] * 1_000)  # every body drops after 100 bytes
    for key, data in FIXTURES.items():
        local.put(key, data)
        s3.put(key, data)
    local_report, local_tables = tables_after_ingest(local, tmp_path, "local", plan, policy)
    s3_report, s3_tables = tables_after_ingest(s3, tmp_path, "s3", plan, policy)
    assert sum(r is not None for r in client.ranges) > len(FIXTURES)  # it did resume, more than once an object
    assert (without_versions(s3_report), s3_tables) == (without_versions(local_report), local_tables)

def test_an_s3_object_replaced_while_it_is_read_is_a_clear_error_not_spliced(s3_env, monkeypatch):
    store, _ = dropping_store(monkeypatch, "lake-replaced", [10],
                              on_drop=lambda: store.put("raw/x.jsonl", b"replaced meanwhile\n" * 10))
    store.put("raw/x.jsonl", b"first version\n" * 10)
    stream = store.open("raw/x.jsonl")
    assert stream.read(10) == b"first vers"
    with pytest.raises(ObjectChangedError, match=r"s3://lake-replaced/raw/x.jsonl was replaced while it was read \(after 10 bytes\)"):
        stream.read(100)


def test_an_s3_object_removed_while_it_is_read_is_a_clear_error(s3_env, monkeypatch):
    store, _ = dropping_store(monkeypatch, "lake-removed", [10], on_drop=lambda: store.delete_prefix("raw/"))
    store.put("raw/x.jsonl", b"first version\n" * 10)
    stream = store.open("raw/x.jsonl")
    assert stream.read(10) == b"first vers"
    with pytest.raises(ObjectChangedError, match=r"s3://lake-removed/raw/x.jsonl was removed while it was read \(after 10 bytes\)"):
        stream.read(100)


def test_an_s3_read_that_keeps_dropping_fails_after_the_attempts_allowed(s3_env, monkeypatch):
    store, client = dropping_store(monkeypatch, "lake-flaky", [5, 0, 0])
    store.put("raw/x.jsonl", b"0123456789\n")
    stream = store.open("raw/x.jsonl")
    assert stream.read(100) == b"01234"
    with pytest.raises(ResponseStreamingError):
        stream.read(100)
    assert client.ranges == [None, "bytes=5-", "bytes=5-"]

def test_exports_read_back_from_s3_are_scanned_like_a_folder_and_their_copies_removed(s3_env, tmp_path):
    make_bucket("lake-exports")
    s3, local = S3ObjectStore(bucket="lake-exports", prefix="p"), LocalObjectStore(root=str(tmp_path / "lake"))
    leaking = gz({"message_id": "ok", "prompt_text": "hello <EMAIL>"}, {"message_id": "bad", "feedback": "ring +1 415 555 0100"})
    keys = [f"exports/ai_observability/dt=2026-09-14/{part}.jsonl.gz" for part in ("a", "b")]
    for store in (s3, local):
        for key in keys:
            store.put(key, leaking)
    with s3.local_files(keys) as paths:
        assert [Path(path).read_bytes() for path in paths] == [leaking, leaking]
    assert not any(Path(path).exists() for path in paths)
    s3_scan, local_scan = (scan_exports(duckdb.connect(), store, "ai_observability", DAY, ["prompt_text", "feedback"])
                           for store in (s3, local))
    assert s3_scan.texts_scanned == local_scan.texts_scanned == 4
    assert s3_scan.leaks.to_dict("records") == local_scan.leaks.to_dict("records") == [
        {"message_id": "bad", "column": "feedback", "entities": "phone"}] * 2


def test_the_safety_metrics_read_exports_back_from_s3_as_from_a_folder(s3_env, tmp_path, plan, policy):
    """The consent-enforcement rate reads every destination's exports back, two destinations at a
    time: from S3, each destination's download runs on a thread of its own."""
    make_bucket("lake-safety")
    stores = {"local": LocalObjectStore(root=str(tmp_path / "lake")), "s3": object_store_from_url("s3://lake-safety/p")}
    rows = {}
    for name, store in stores.items():
        for key, data in FIXTURES.items():
            store.put(key, data)
        con, secure, _ = ingested(store, tmp_path, name, plan, policy)
        with secure.get_connection() as secure_con:
            rows[name] = compute_safety(con, store, secure_con, DAY, policy, [governed_table(e) for e in plan.events])
    exported = {key.split("/")[1] for key in stores["s3"].list_keys("exports/")}
    assert len(exported) >= 2  # at least two destinations read back side by side
    assert rows["s3"] == rows["local"]
    assert rows["s3"]["consent_enforcement_rate"] == 1.0 and rows["s3"]["routing_decisions"] > 0


def test_bad_retry_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="retry_mode must be 'standard' or 'adaptive'"):
        list(S3ObjectStore(bucket="b", retry_mode="legacy").list_keys(""))


@pytest.mark.parametrize("kind", ["s3", "local"])
def test_an_object_removed_after_it_was_listed_fails_the_day_naming_it_and_lands_nothing(kind, s3_env, monkeypatch,
                                                                                        tmp_path, plan, policy):
    if kind == "s3":
        make_bucket("lake-gone")
        store = object_store_from_url("s3://lake-gone/prod")
    else:
        store = LocalObjectStore(root=str(tmp_path / "lake"))
    for key, data in FIXTURES.items():
        store.put(key, data)
    gone = "raw/ai_events/dt=2026-09-14/part-9.jsonl.gz"
    listed = type(store).list_objects
    monkeypatch.setattr(type(store), "list_objects",
                        lambda self, prefix: [*listed(self, prefix), *([ListedObject(gone, "v")] if gone.startswith(prefix) else [])])
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    with pytest.raises(FileNotFoundError, match=re.escape(gone)):
        ingest_partition(store, con, DAY, plan, policy, SecureStore(database=str(tmp_path / "secure.duckdb")))
    assert con.execute("SELECT count(*) FROM audit.governance_log").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM audit.ingest_files").fetchone() == (0,)
    if kind == "s3":
        with pytest.raises(FileNotFoundError, match=r"s3://lake-gone/prod/" + re.escape(gone) + ": no such object"):
            with store.local_files([gone]):
                pass


def test_run_on_an_s3_lake_that_cannot_be_listed_stops_before_any_day_naming_it(s3_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TELEMETRY_LAKE_URL", "s3://no-such-lake/prod")
    assert main(["run", "--start", "2026-09-01", "--end", "2026-09-30"]) == 2
    err = capsys.readouterr().err
    assert "TELEMETRY_LAKE_URL: s3://no-such-lake/prod cannot be listed" in err and "NoSuchBucket" in err
    assert not (tmp_path / "home").exists()


def test_a_dagster_run_on_an_s3_lake_that_cannot_be_listed_fails_naming_the_lake(s3_env, tmp_path):
    resources = {"lake": S3ObjectStore(bucket="no-such-lake", prefix="prod"),
                 "warehouse": Warehouse(database=str(tmp_path / "warehouse.duckdb")),
                 "secrets": GovernanceSecrets(), "secure_store": SecureStore(database=str(tmp_path / "secure.duckdb"))}
    result = dg.materialize([ingest_ai_events], partition_key="2026-09-14", resources=resources, raise_on_error=False)
    assert not result.success
    cause = result.failure_data_for_node("ingest_ai_events").error.cause
    assert cause.cls_name == "LakeUnreadableError"
    assert "s3://no-such-lake/prod cannot be listed" in cause.message and "NoSuchBucket" in cause.message


class RefusingClient:
    """A boto3 client whose credentials may read but not write: puts are refused, and a batch
    delete answers with every key it did not delete, as S3 does."""

    def __init__(self, client):
        self.client = client

    def put_object(self, **kwargs):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")

    def delete_objects(self, Bucket, Delete):
        return {"Errors": [{"Key": o["Key"], "Code": "AccessDenied", "Message": "Access Denied"} for o in Delete["Objects"]]}

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_s3_writes_the_credentials_may_not_make_fail_naming_the_object_and_nothing_is_taken_for_deleted(
        s3_env, monkeypatch):
    make_bucket("lake-read-only")
    store = S3ObjectStore(bucket="lake-read-only", prefix="prod")
    store.put("exports/x/dt=2026-09-14/stale-00001.jsonl.gz", b"old")
    refusing = RefusingClient(store._client())
    monkeypatch.setattr(S3ObjectStore, "_client", lambda self: refusing)
    with pytest.raises(PermissionError, match=r"s3://lake-read-only/prod/exports/x/dt=2026-09-14/new\.jsonl\.gz: .*AccessDenied"):
        store.put("exports/x/dt=2026-09-14/new.jsonl.gz", b"new")
    with pytest.raises(OSError, match=r"s3://lake-read-only/prod/exports/x/dt=2026-09-14/: 1 object\(s\) not deleted, "
                                      r"e\.g\. prod/exports/x/dt=2026-09-14/stale-00001\.jsonl\.gz: AccessDenied"):
        store.delete_prefix("exports/x/dt=2026-09-14/")
    assert list(store.list_keys("exports/")) == ["exports/x/dt=2026-09-14/stale-00001.jsonl.gz"]


def test_bench_on_an_s3_lake_that_cannot_be_listed_says_so(s3_env, capsys):
    assert main(["bench", "--lake", "s3://no-such-lake/prod", "--date", "2026-09-14"]) == 2
    err = capsys.readouterr().err
    assert "telemetry bench: s3://no-such-lake/prod cannot be listed" in err and "NoSuchBucket" in err


def test_an_erasure_on_s3_writes_the_exports_again_without_the_person(s3_env, tmp_path, plan, policy):
    make_bucket("lake-erase")
    s3 = object_store_from_url("s3://lake-erase/prod/events")
    gone = {**ai_call(message_id="gone"), "userId": "usr_gone", "anonymousId": "anon_gone"}
    gone["properties"]["conversation_id"] = "conv_gone"
    s3.put(f"raw/ai_events/dt={DAY}/part-0.jsonl.gz", gz(gone, ai_call(message_id="stays")))
    warehouse = Warehouse(database=str(tmp_path / "warehouse.duckdb"))
    secure_store = SecureStore(database=str(tmp_path / "secure.duckdb"))
    with warehouse.get_connection() as con:
        ingest_partition(s3, con, DAY, plan, policy, secure_store)

    (report,) = erase_people(s3, warehouse, secure_store, [Request(user_ids=("usr_gone",))])

    assert report.rows_erased["exports/product_analytics"] == report.rows_erased["exports/ai_observability"] == 1
    for key in s3.list_keys("exports/"):
        with contextlib.closing(s3.open(key)) as stream:
            assert [row["message_id"] for row in map(json.loads, gzip.decompress(stream.read()).splitlines())] == ["stays"]


def test_s3_clients_are_made_one_at_a_time_whatever_the_threads(monkeypatch):
    """boto3's default session, which `boto3.client` uses, is not thread safe: ingest's reading and
    upload threads, and the exports read back two destinations at a time, make clients at once."""
    inside, most_inside, lock = [0], [0], threading.Lock()

    def slow_client(*args, **kwargs):
        with lock:
            inside[0] += 1
            most_inside[0] = max(most_inside[0], inside[0])
        time.sleep(0.01)  # long enough for other threads to arrive while this one is making a client
        with lock:
            inside[0] -= 1
        return object()

    monkeypatch.setattr(boto3, "client", slow_client)
    store = S3ObjectStore(bucket="lake")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: store._client(), range(16)))
    assert most_inside[0] == 1
