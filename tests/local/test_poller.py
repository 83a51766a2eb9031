"""Tests of scripts/poller.py (and of the event sources scripts/provision.py writes for it).

Starts scripts/moto-server.py on a free port and a fake Lambda Invoke API (http.server in a
thread), then runs the poller as scripts/local-stack does. Run with the stack venv's Python:

    .local-stack/venv/bin/python -m unittest discover -s tests/local -v
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import boto3

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))

import poller  # noqa: E402
import provision  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "123456789012"
KEYS = ("testing", "testing")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ---------------------------------------------------------------------------------------------
# The fake Invoke API: per function name, a behaviour that answers (status, headers, body).

Behaviour = Callable[[dict[str, Any], int], tuple[int, dict[str, str], bytes]]


class FakeLambda:
    def __init__(self) -> None:
        self.behaviours: dict[str, Behaviour] = {}
        self.calls: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                parts = self.path.strip("/").split("/")
                name = parts[2] if len(parts) == 4 and parts[3] == "invocations" else ""
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.calls.setdefault(name, []).append(payload)
                    attempt = len(fake.calls[name])
                behaviour = fake.behaviours.get(name, lambda _e, _a: (404, {}, b"no such function"))
                status, headers, body = behaviour(payload, attempt)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def records(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for call in self.calls.get(name, []) for r in call["Records"]]

    def invocations(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.calls.get(name, []))


def ok(body: Any = None) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def function_error(_event: dict[str, Any], _attempt: int) -> tuple[int, dict[str, str], bytes]:
    return 200, {"X-Amz-Function-Error": "Unhandled"}, b'{"errorType":"Boom","errorMessage":"boom"}'


# ---------------------------------------------------------------------------------------------
# Module fixtures: one moto, one fake Lambda

MOTO: subprocess.Popen[bytes] | None = None
MOTO_URL = ""
LAMBDA: FakeLambda | None = None
SQS: Any = None


def setUpModule() -> None:  # noqa: N802 - unittest's naming
    global MOTO, MOTO_URL, LAMBDA, SQS
    port = free_port()
    MOTO_URL = f"http://127.0.0.1:{port}"
    MOTO = subprocess.Popen([sys.executable, str(SCRIPTS / "moto-server.py"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{MOTO_URL}/moto-api/", timeout=1):
                return True
        except OSError:
            return False

    wait_until(answers, 30, "moto to answer")
    LAMBDA = FakeLambda()
    SQS = boto3.client("sqs", endpoint_url=MOTO_URL, region_name=REGION,
                       aws_access_key_id=KEYS[0], aws_secret_access_key=KEYS[1])


def tearDownModule() -> None:  # noqa: N802
    if LAMBDA:
        LAMBDA.server.shutdown()
    if MOTO:
        MOTO.terminate()
        MOTO.wait(10)


def make_queue(name: str, visibility: int = 30, dlq_arn: str | None = None, max_receives: int = 3) -> tuple[str, str]:
    attributes = {"VisibilityTimeout": str(visibility)}
    if dlq_arn:
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives})
    url = SQS.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = SQS.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def queue_counts(url: str) -> tuple[int, int]:
    attrs = SQS.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def mapping(function: str, url: str, arn: str, batch_size: int, report_failures: bool,
            window: int = 0) -> dict[str, Any]:
    return {"function": function, "binary": function, "event": "Messages", "function_timeout": 10,
            "queue_arn": arn, "queue_url": url, "batch_size": batch_size,
            "maximum_batching_window_seconds": window,
            "function_response_types": ["ReportBatchItemFailures"] if report_failures else [],
            "maximum_concurrency": None, "enabled": True}


class PollerProcess:
    """scripts/poller.py with its own env file and event sources, as scripts/local-stack runs it."""

    def __init__(self, queues: list[dict[str, Any]], schedules: list[dict[str, Any]] | None = None,
                 env: dict[str, str] | None = None):
        self.dir = tempfile.TemporaryDirectory(prefix="poller-test-")
        base = Path(self.dir.name)
        sources = base / "event-sources.json"
        sources.write_text(json.dumps({"region": REGION, "account_id": ACCOUNT, "queues": queues,
                                       "schedules": schedules or []}))
        env_file = base / "env"
        env_file.write_text("\n".join([
            f"AWS_ENDPOINT_URL={MOTO_URL}", f"LAMBDA_ENDPOINT_URL={LAMBDA.url}", f"AWS_REGION={REGION}",
            f"AWS_ACCESS_KEY_ID={KEYS[0]}", f"AWS_SECRET_ACCESS_KEY={KEYS[1]}"]) + "\n")
        self.log_path = base / "poller.log"
        process_env = {k: v for k, v in os.environ.items() if not k.startswith("LOCAL_")}
        process_env.update({"LOCAL_POLL_IDLE_SECONDS": "0.1", "LOCAL_TICK_SECONDS": "0"})
        process_env.update(env or {})
        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(SCRIPTS / "poller.py"), "--event-sources", str(sources),
             "--env-file", str(env_file)],
            stdout=self.log_file, stderr=subprocess.STDOUT, env=process_env)
        wait_until(lambda: "poller up" in self.log() or self.process.poll() is not None, 15, "the poller to start")
        if self.process.poll() is not None:
            raise AssertionError(f"the poller exited:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def lines(self, prefix: str) -> list[str]:
        return [line.split(" ", 1)[1] for line in self.log().splitlines() if line.split(" ", 1)[-1].startswith(prefix)]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.log_file.close()
        self.dir.cleanup()

    def __enter__(self) -> "PollerProcess":
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:
            sys.stderr.write(f"\n--- poller log ---\n{self.log()}---\n")
        self.stop()


# ---------------------------------------------------------------------------------------------
# Pure logic: case tables


class SettleTest(unittest.TestCase):
    IDS = ["a", "b", "c"]

    def test_cases(self) -> None:
        inv = poller.Invocation
        cases = [
            # (name, invocation, report failures, deleted, outcome)
            ("success, plain", inv(200, None, b'{"anything":1}'), False, ["a", "b", "c"], "ok"),
            ("success, empty body", inv(200, None, b""), True, ["a", "b", "c"], "ok"),
            ("success, null", inv(200, None, b"null"), True, ["a", "b", "c"], "ok"),
            ("success, no list", inv(200, None, b"{}"), True, ["a", "b", "c"], "ok"),
            ("success, empty list", inv(200, None, b'{"batchItemFailures":[]}'), True, ["a", "b", "c"], "ok"),
            ("success, null list", inv(200, None, b'{"batchItemFailures":null}'), True, ["a", "b", "c"], "ok"),
            ("partial", inv(200, None, b'{"batchItemFailures":[{"itemIdentifier":"b"}]}'), True, ["a", "c"], "partial"),
            ("partial, repeated id", inv(200, None, b'{"batchItemFailures":[{"itemIdentifier":"b"},{"itemIdentifier":"b"}]}'),
             True, ["a", "c"], "partial"),
            ("all failed", inv(200, None, b'{"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"b"},'
                                            b'{"itemIdentifier":"c"}]}'), True, [], "partial"),
            ("failures ignored without the response type",
             inv(200, None, b'{"batchItemFailures":[{"itemIdentifier":"b"}]}'), False, ["a", "b", "c"], "ok"),
            ("unknown id fails the batch", inv(200, None, b'{"batchItemFailures":[{"itemIdentifier":"zz"}]}'), True, [], "bad-response"),
            ("empty id fails the batch", inv(200, None, b'{"batchItemFailures":[{"itemIdentifier":""}]}'), True, [], "bad-response"),
            ("null id fails the batch", inv(200, None, b'{"batchItemFailures":[{"itemIdentifier":null}]}'), True, [], "bad-response"),
            ("bad key fails the batch", inv(200, None, b'{"batchItemFailures":[{"id":"a"}]}'), True, [], "bad-response"),
            ("not JSON fails the batch", inv(200, None, b"{oops"), True, [], "bad-response"),
            ("a JSON string fails the batch", inv(200, None, b'"fine"'), True, [], "bad-response"),
            ("function error", inv(200, "Unhandled", b'{"errorMessage":"x"}'), True, [], "function-error"),
            ("function error, plain", inv(200, "Unhandled", b""), False, [], "function-error"),
            ("HTTP 500", inv(500, None, b"internal"), False, [], "http-500"),
            ("HTTP 404", inv(404, None, b"no such function"), True, [], "http-404"),
            ("unreachable", inv(None, None, b"", error="connection refused"), False, [], "unreachable"),
        ]
        for name, invocation, report, deleted, outcome in cases:
            with self.subTest(name):
                settlement = poller.settle(invocation, self.IDS, report)
                self.assertEqual(settlement.delete, deleted)
                self.assertEqual(settlement.outcome, outcome)


class LogTest(unittest.TestCase):
    def test_lines_from_many_threads_stay_whole(self) -> None:
        # Unbuffered, as scripts/local-stack runs the poller: each write is its own syscall.
        script = (
            "import sys, threading; sys.setswitchinterval(1e-6); import poller\n"
            "def burst(n):\n"
            "    for i in range(300): poller.log(f'delivery thread={n} line={i} ' + 'x' * 64)\n"
            "threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]\n"
            "[t.start() for t in threads]; [t.join() for t in threads]\n"
        )
        with tempfile.TemporaryFile("w+") as out:
            subprocess.run([sys.executable, "-u", "-c", script], stdout=out, check=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(SCRIPTS)})
            out.seek(0)
            lines = out.read().splitlines()
        self.assertEqual(len(lines), 8 * 300)
        whole = [line for line in lines if re.fullmatch(r"\S+Z delivery thread=\d line=\d+ x{64}", line)]
        self.assertEqual(len(whole), len(lines), [line for line in lines if line not in whole][:3])


class ScheduleLogicTest(unittest.TestCase):
    def test_rate_seconds(self) -> None:
        cases = [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600),
                 ("rate(2 hours)", 7200), ("rate(1 day)", 86400), (" rate( 10 minutes ) ", 600),
                 ("rate(0 minutes)", None), ("cron(0 2 * * ? *)", None), ("rate(1 second)", None), ("", None)]
        for expression, seconds in cases:
            with self.subTest(expression):
                self.assertEqual(poller.rate_seconds(expression), seconds)

    def test_next_slot(self) -> None:
        cases = [(0.0, 60, 60.0), (59.9, 60, 60.0), (60.0, 60, 120.0), (1_800_000_030.5, 60, 1_800_000_060.0),
                 (10.2, 1, 11.0), (10.0, 0.5, 10.5)]
        for now, interval, slot in cases:
            with self.subTest(now=now, interval=interval):
                self.assertEqual(poller.next_slot(now, interval), slot)

    def interval(self, schedule: str, tick_seconds: str | None) -> list[float]:
        env = {"LAMBDA_ENDPOINT_URL": "http://l", "AWS_ENDPOINT_URL": "http://a",
               "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
        if tick_seconds is not None:
            env["LOCAL_TICK_SECONDS"] = tick_seconds
        settings = poller.load_settings(env)
        with tempfile.NamedTemporaryFile("w", suffix=".json") as fh:
            json.dump({"queues": [], "schedules": [{"function": "F", "binary": "f", "event": "Tick",
                                                    "rule_name": "r", "schedule": schedule, "enabled": True}]}, fh)
            fh.flush()
            _, schedules = poller.load_event_sources(Path(fh.name), settings)
        return [s.interval_seconds for s in schedules]

    def test_tick_interval(self) -> None:
        cases = [("rate(1 minute)", None, [60.0]), ("rate(5 minutes)", None, [300.0]),
                 ("rate(5 minutes)", "2", [2.0]), ("rate(1 minute)", "0.5", [0.5]),
                 ("rate(1 minute)", "0", []), ("cron(0 2 * * ? *)", None, [60.0]), ("rate(1 minute)", "", [60.0])]
        for schedule, tick_seconds, intervals in cases:
            with self.subTest(schedule=schedule, tick_seconds=tick_seconds):
                self.assertEqual(self.interval(schedule, tick_seconds), intervals)

    def test_bad_tick_setting_names_the_variable(self) -> None:
        for value in ["soon", "-1"]:
            with self.subTest(value), self.assertRaisesRegex(poller.PollerError, "LOCAL_TICK_SECONDS"):
                self.interval("rate(1 minute)", value)

    def test_message_attributes_in_lambda_spelling(self) -> None:
        converted = poller.lambda_message_attributes({
            "tenant": {"DataType": "String", "StringValue": "t-1 ✓"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
            "n": {"DataType": "Number", "StringValue": "-1.50"},
        })
        self.assertEqual(converted, {
            "tenant": {"stringValue": "t-1 ✓", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "blob": {"binaryValue": "AP8=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
            "n": {"stringValue": "-1.50", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
        })


# ---------------------------------------------------------------------------------------------
# Against moto and the fake Invoke API


class DeliveryTest(unittest.TestCase):
    def test_batch_size_record_shape_and_success_deletes(self) -> None:
        url, arn = make_queue("batch-size")
        bodies = [f"message {i}: tab\t, pipe |, quote \", CRLF \r\n, emoji 🚀" for i in range(7)]
        for body in bodies:
            SQS.send_message(QueueUrl=url, MessageBody=body,
                             MessageAttributes={"tenant": {"DataType": "String", "StringValue": "t-1"}})
        LAMBDA.behaviours["batch-fn"] = lambda _e, _a: ok({"report": "anything"})
        with PollerProcess([mapping("batch-fn", url, arn, batch_size=3, report_failures=False)]) as p:
            wait_until(lambda: len(LAMBDA.records("batch-fn")) >= 7, 15, "7 records delivered")
            wait_until(lambda: queue_counts(url) == (0, 0), 10, "the queue to be empty")
            sizes = [len(call["Records"]) for call in LAMBDA.invocations("batch-fn")]
            self.assertTrue(all(1 <= n <= 3 for n in sizes), sizes)
            self.assertEqual(sum(sizes), 7)
            records = LAMBDA.records("batch-fn")
            self.assertEqual(sorted(r["body"] for r in records), sorted(bodies))
            record = records[0]
            self.assertEqual(record["eventSource"], "aws:sqs")
            self.assertEqual(record["eventSourceARN"], arn)
            self.assertEqual(record["awsRegion"], REGION)
            self.assertEqual(record["attributes"]["ApproximateReceiveCount"], "1")
            self.assertIn("SentTimestamp", record["attributes"])
            self.assertEqual(len(record["md5OfBody"]), 32)
            self.assertTrue(record["messageId"] and record["receiptHandle"])
            self.assertEqual(record["messageAttributes"]["tenant"]["stringValue"], "t-1")
            self.assertEqual(record["messageAttributes"]["tenant"]["dataType"], "String")
            wait_until(lambda: len(p.lines("delivery ")) == len(sizes), 5, "one log line per delivery")
            line = p.lines("delivery ")[0]
            for part in ["queue=batch-size", "function=batch-fn", "outcome=ok", "ms="]:
                self.assertIn(part, line)

    def test_batching_window_fills_the_batch(self) -> None:
        url, arn = make_queue("window")
        LAMBDA.behaviours["window-fn"] = lambda _e, _a: ok(None)
        with PollerProcess([mapping("window-fn", url, arn, batch_size=15, report_failures=False, window=3)]):
            SQS.send_message(QueueUrl=url, MessageBody="first")
            time.sleep(0.5)
            for i in range(14):
                SQS.send_message(QueueUrl=url, MessageBody=f"later {i}")
            wait_until(lambda: len(LAMBDA.records("window-fn")) >= 15, 15, "15 records delivered")
            self.assertEqual([len(c["Records"]) for c in LAMBDA.invocations("window-fn")], [15])

    def test_partial_batch_failure_deletes_only_the_others(self) -> None:
        url, arn = make_queue("partial", visibility=2)
        for body in ["keep-1", "fail-me", "keep-2", "fail-too"]:
            SQS.send_message(QueueUrl=url, MessageBody=body)

        def behaviour(event: dict[str, Any], attempt: int) -> tuple[int, dict[str, str], bytes]:
            if attempt == 1:
                failed = [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"].startswith("fail")]
                return ok({"batchItemFailures": failed})
            return ok({"batchItemFailures": []})

        LAMBDA.behaviours["partial-fn"] = behaviour
        with PollerProcess([mapping("partial-fn", url, arn, batch_size=10, report_failures=True)]) as p:
            wait_until(lambda: LAMBDA.invocations("partial-fn"), 10, "the first delivery")
            first = LAMBDA.invocations("partial-fn")[0]["Records"]
            self.assertEqual(len(first), 4)
            wait_until(lambda: p.lines("delivery "), 5, "the first delivery's log line")
            self.assertIn("outcome=partial", p.lines("delivery ")[0])
            self.assertIn("deleted=2", p.lines("delivery ")[0])
            # The two failures come back after the visibility timeout, the others never do.
            wait_until(lambda: len(LAMBDA.invocations("partial-fn")) >= 2, 10, "the redelivery")
            again = LAMBDA.invocations("partial-fn")[1]["Records"]
            self.assertEqual(sorted(r["body"] for r in again), ["fail-me", "fail-too"])
            self.assertEqual({r["attributes"]["ApproximateReceiveCount"] for r in again}, {"2"})
            wait_until(lambda: queue_counts(url) == (0, 0), 10, "the queue to be empty")
            time.sleep(2.5)
            self.assertEqual(len(LAMBDA.invocations("partial-fn")), 2)

    def test_function_error_deletes_none_and_messages_return_after_the_visibility_timeout(self) -> None:
        url, arn = make_queue("errors", visibility=2)
        for body in ["one", "two"]:
            SQS.send_message(QueueUrl=url, MessageBody=body)
        seen_at: list[float] = []

        def behaviour(event: dict[str, Any], attempt: int) -> tuple[int, dict[str, str], bytes]:
            seen_at.append(time.monotonic())
            return function_error(event, attempt) if attempt == 1 else ok({"batchItemFailures": []})

        LAMBDA.behaviours["error-fn"] = behaviour
        with PollerProcess([mapping("error-fn", url, arn, batch_size=10, report_failures=True)]) as p:
            wait_until(lambda: p.lines("delivery "), 10, "the failed delivery")
            self.assertIn("outcome=function-error", p.lines("delivery ")[0])
            self.assertIn("deleted=0", p.lines("delivery ")[0])
            self.assertEqual(queue_counts(url), (0, 2))  # in flight, not deleted
            wait_until(lambda: len(LAMBDA.invocations("error-fn")) >= 2, 10, "the redelivery")
            self.assertGreaterEqual(seen_at[1] - seen_at[0], 1.5)
            again = LAMBDA.invocations("error-fn")[1]["Records"]
            self.assertEqual(sorted(r["body"] for r in again), ["one", "two"])
            self.assertEqual({r["attributes"]["ApproximateReceiveCount"] for r in again}, {"2"})
            wait_until(lambda: queue_counts(url) == (0, 0), 10, "the queue to be empty")

    def test_http_error_deletes_none(self) -> None:
        url, arn = make_queue("http-errors", visibility=60)
        SQS.send_message(QueueUrl=url, MessageBody="x")
        LAMBDA.behaviours["http-500-fn"] = lambda _e, _a: (500, {}, b"internal")
        with PollerProcess([mapping("http-500-fn", url, arn, batch_size=1, report_failures=False)]) as p:
            wait_until(lambda: p.lines("delivery "), 10, "the delivery")
            self.assertIn("outcome=http-500", p.lines("delivery ")[0])
        # Still in flight, not deleted (and not handed back on stop: the delivery had settled).
        self.assertEqual(queue_counts(url), (0, 1))
        SQS.purge_queue(QueueUrl=url)

    def test_redrive_to_the_dead_letter_queue_after_max_receive_count(self) -> None:
        dlq_url, dlq_arn = make_queue("redrive-dlq")
        url, arn = make_queue("redrive", visibility=1, dlq_arn=dlq_arn, max_receives=2)
        SQS.send_message(QueueUrl=url, MessageBody="poison ☠")
        LAMBDA.behaviours["poison-fn"] = function_error
        with PollerProcess([mapping("poison-fn", url, arn, batch_size=1, report_failures=True)]):
            wait_until(lambda: queue_counts(dlq_url)[0] == 1, 15, "the message in the DLQ")
            self.assertEqual(queue_counts(url), (0, 0))
            time.sleep(1.5)
        # Received maxReceiveCount times, then moved by SQS (moto) on the next receive.
        self.assertEqual([r["attributes"]["ApproximateReceiveCount"] for r in LAMBDA.records("poison-fn")], ["1", "2"])
        dead = SQS.receive_message(QueueUrl=dlq_url)["Messages"]
        self.assertEqual([m["Body"] for m in dead], ["poison ☠"])

    def test_stopping_hands_running_deliveries_back(self) -> None:
        url, arn = make_queue("stopping", visibility=600)
        SQS.send_message(QueueUrl=url, MessageBody="slow")

        def slow(_event: dict[str, Any], _attempt: int) -> tuple[int, dict[str, str], bytes]:
            time.sleep(15)
            return ok(None)

        LAMBDA.behaviours["slow-fn"] = slow
        p = PollerProcess([mapping("slow-fn", url, arn, batch_size=1, report_failures=False)])
        try:
            wait_until(lambda: LAMBDA.invocations("slow-fn"), 10, "the delivery to start")
            p.process.terminate()
            p.process.wait(20)
            self.assertIn("made visible again", p.log())
        finally:
            p.stop()
        self.assertEqual(queue_counts(url), (1, 0))
        SQS.purge_queue(QueueUrl=url)


class TickTest(unittest.TestCase):
    SCHEDULE = {"function": "ScheduledExportFunction", "binary": "tick-fn", "event": "Tick",
                "function_timeout": 10, "rule_name": "stack-ScheduledExportFunctionTick",
                "schedule": "rate(1 minute)", "input": None, "enabled": True}

    def test_tick_payload_and_interval(self) -> None:
        LAMBDA.behaviours["tick-fn"] = lambda _e, _a: ok({"due": []})
        with PollerProcess([], [self.SCHEDULE], env={"LOCAL_TICK_SECONDS": "1"}) as p:
            wait_until(lambda: len(LAMBDA.invocations("tick-fn")) >= 3, 10, "three ticks")
            ticks = LAMBDA.invocations("tick-fn")[:3]
            wait_until(lambda: len(p.lines("tick ")) >= 3, 5, "the ticks' log lines")
            self.assertIn("outcome=ok", p.lines("tick ")[0])
        first = ticks[0]
        self.assertEqual(first["source"], "aws.events")
        self.assertEqual(first["detail-type"], "Scheduled Event")
        self.assertEqual(first["version"], "0")
        self.assertEqual(first["account"], ACCOUNT)
        self.assertEqual(first["region"], REGION)
        self.assertEqual(first["detail"], {})
        self.assertEqual(first["resources"], [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/stack-ScheduledExportFunctionTick"])
        self.assertEqual(len({t["id"] for t in ticks}), 3)
        slots = [time.mktime(time.strptime(t["time"], "%Y-%m-%dT%H:%M:%SZ")) for t in ticks]
        self.assertEqual([b - a for a, b in zip(slots, slots[1:])], [1.0, 1.0])

    def test_ticks_off(self) -> None:
        LAMBDA.behaviours["tick-off-fn"] = lambda _e, _a: ok(None)
        schedule = {**self.SCHEDULE, "binary": "tick-off-fn"}
        with PollerProcess([], [schedule], env={"LOCAL_TICK_SECONDS": "0"}) as p:
            time.sleep(2.5)
            self.assertIn("ticks=off", p.log())
        self.assertEqual(LAMBDA.invocations("tick-off-fn"), [])

    def test_rule_input_replaces_the_event(self) -> None:
        LAMBDA.behaviours["tick-input-fn"] = lambda _e, _a: ok(None)
        schedule = {**self.SCHEDULE, "binary": "tick-input-fn", "input": '{"mode": "catch-up"}'}
        with PollerProcess([], [schedule], env={"LOCAL_TICK_SECONDS": "0.5"}):
            wait_until(lambda: LAMBDA.invocations("tick-input-fn"), 5, "a tick")
        self.assertEqual(LAMBDA.invocations("tick-input-fn")[0], {"mode": "catch-up"})


class ProvisionEventSourcesTest(unittest.TestCase):
    """provision.py against the same moto (IAM off): the template's mappings and schedules."""

    def test_template_event_sources_and_env(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            env_file, sources_file = Path(tmp) / "env", Path(tmp) / "event-sources.json"
            subprocess.run([sys.executable, str(SCRIPTS / "provision.py"), "--template", str(REPO_ROOT / "template.yaml"),
                            "--endpoint", MOTO_URL, "--lambda-endpoint", "http://127.0.0.1:1", "--env-file", str(env_file),
                            "--event-sources-file", str(sources_file), "--iam", "off"],
                           check=True, capture_output=True)
            sources = json.loads(sources_file.read_text())
            env = provision.read_env_file(env_file)
        by_binary = {q["binary"]: q for q in sources["queues"]}
        self.assertEqual(set(by_binary), {"scheduled-export", "s3-ingest"})
        export = by_binary["scheduled-export"]
        self.assertEqual(export["batch_size"], 1)
        self.assertEqual(export["function_response_types"], ["ReportBatchItemFailures"])
        self.assertEqual(export["maximum_concurrency"], 10)
        self.assertEqual(export["function_timeout"], 900)
        self.assertTrue(export["queue_arn"].endswith(":s3-connector-local-export"))
        self.assertEqual(export["queue_url"], env["EXPORT_QUEUE_URL"])
        ingest = by_binary["s3-ingest"]
        self.assertEqual(ingest["batch_size"], 10)
        self.assertEqual(ingest["queue_arn"], env["INGEST_QUEUE_ARN"])
        self.assertEqual([(s["binary"], s["schedule"]) for s in sources["schedules"]],
                         [("scheduled-export", "rate(1 minute)"), ("s3-ingest", "rate(15 minutes)")])
        self.assertEqual(env["SPOOL_DIR"], "/tmp")
        attrs = SQS.get_queue_attributes(QueueUrl=env["EXPORT_QUEUE_URL"], AttributeNames=["All"])["Attributes"]
        self.assertEqual(int(attrs["VisibilityTimeout"]), 6 * 900)
        redrive = json.loads(attrs["RedrivePolicy"])
        self.assertEqual(int(redrive["maxReceiveCount"]), 3)
        self.assertTrue(redrive["deadLetterTargetArn"].endswith(":s3-connector-local-export-dlq"))


if __name__ == "__main__":
    unittest.main()
