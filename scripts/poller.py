#!/usr/bin/env python3
"""Local stand-in for what AWS runs between the services (started by scripts/local-stack).

- SQS event source mappings: receives from each queue a function's `Type: SQS` event names,
  invokes the function with Lambda's SQS event through the Invoke API of `cargo lambda watch`,
  then deletes what succeeded: the whole batch on success, all but the reported
  `batchItemFailures` with ReportBatchItemFailures, nothing when the invocation fails (the
  messages come back after the visibility timeout; moto moves a message to the dead-letter queue
  on the receive after its maxReceiveCount-th, as SQS does).
- EventBridge schedules: fires each `Type: Schedule` event as a "Scheduled Event" at its rate
  (LOCAL_TICK_SECONDS overrides it; 0 turns ticks off).

Reads the event sources scripts/provision.py writes (--event-sources) and the stack's env file
(endpoints and keys). One log line per delivery and per tick on stdout. See docs/local-stack.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provision import read_env_file  # noqa: E402 - the stack's env file format lives there

# SQS returns at most 10 messages per ReceiveMessage.
SQS_RECEIVE_MAX = 10
# Seconds a stopping poller waits for running deliveries before handing their messages back.
STOP_GRACE_SECONDS = 8.0


class PollerError(Exception):
    pass


# Deliveries log from several threads; print() writes the text and the newline separately, so
# two lines could merge into one. One write of the whole line, under a lock, keeps lines whole.
_LOG_LOCK = threading.Lock()


def log(line: str) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    with _LOG_LOCK:
        sys.stdout.write(f"{now} {line}\n")
        sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Settings:
    lambda_endpoint: str
    aws_endpoint: str
    region: str
    access_key: str
    secret_key: str
    # None: each rule's own rate; 0: no ticks.
    tick_seconds: float | None
    concurrency: int
    wait_seconds: int
    idle_seconds: float


def env_number(env: dict[str, str], name: str, default: float | None, minimum: float) -> float | None:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise PollerError(f"{name} must be a number of seconds or a count, not {raw!r}") from None
    if value < minimum or math.isnan(value):
        raise PollerError(f"{name} must be at least {minimum:g}, not {raw!r}")
    return value


def load_settings(env: dict[str, str]) -> Settings:
    missing = [k for k in ("LAMBDA_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                           "AWS_SECRET_ACCESS_KEY") if not env.get(k)]
    if missing:
        raise PollerError(f"the env file lacks {', '.join(missing)}: run scripts/local-stack up")
    return Settings(
        lambda_endpoint=env["LAMBDA_ENDPOINT_URL"].rstrip("/"),
        aws_endpoint=env["AWS_ENDPOINT_URL"].rstrip("/"),
        region=env.get("AWS_REGION") or "us-east-1",
        access_key=env["AWS_ACCESS_KEY_ID"],
        secret_key=env["AWS_SECRET_ACCESS_KEY"],
        tick_seconds=env_number(env, "LOCAL_TICK_SECONDS", None, 0),
        concurrency=int(env_number(env, "LOCAL_POLLER_CONCURRENCY", 2, 1) or 2),
        # 0 by default: scripts/moto-server.py handles one request at a time, so a long poll
        # would hold every other request to moto for its whole wait.
        wait_seconds=int(env_number(env, "LOCAL_POLL_WAIT_SECONDS", 0, 0) or 0),
        idle_seconds=env_number(env, "LOCAL_POLL_IDLE_SECONDS", 1.0, 0.05) or 1.0,
    )


# ---------------------------------------------------------------------------------------------
# Event sources


@dataclass(frozen=True)
class QueueMapping:
    function: str
    binary: str
    queue_url: str
    queue_arn: str
    batch_size: int
    batching_window_seconds: int
    report_batch_item_failures: bool
    function_timeout: int
    concurrency: int

    @property
    def queue_name(self) -> str:
        return self.queue_arn.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class Schedule:
    function: str
    binary: str
    rule_arn: str
    expression: str
    interval_seconds: float
    input: Any
    function_timeout: int


_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    """Seconds between two firings of `rate(N unit)`; None for cron() and anything else."""
    match = _RATE.match(expression.strip())
    if not match:
        return None
    count, unit = int(match.group(1)), match.group(2).rstrip("s")
    if count < 1:
        return None
    return count * _UNIT_SECONDS[unit]


def load_event_sources(path: Path, settings: Settings) -> tuple[list[QueueMapping], list[Schedule]]:
    try:
        sources = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PollerError(f"cannot read the event sources {path}: {e} (scripts/local-stack up writes it)") from e
    account = sources.get("account_id", "123456789012")
    region = sources.get("region", settings.region)
    mappings = []
    for q in sources.get("queues", []):
        if not q.get("enabled", True):
            log(f"mapping {q['function']}.{q['event']}: disabled in the template; not polled")
            continue
        bound = q.get("maximum_concurrency")
        mappings.append(QueueMapping(
            function=q["function"],
            binary=q["binary"],
            queue_url=q["queue_url"],
            queue_arn=q["queue_arn"],
            batch_size=max(1, int(q.get("batch_size", 10))),
            batching_window_seconds=int(q.get("maximum_batching_window_seconds", 0)),
            report_batch_item_failures="ReportBatchItemFailures" in (q.get("function_response_types") or []),
            function_timeout=int(q.get("function_timeout", 60)),
            concurrency=min(settings.concurrency, int(bound)) if bound else settings.concurrency,
        ))
    schedules = []
    for s in sources.get("schedules", []):
        if not s.get("enabled", True):
            continue
        rule_rate = rate_seconds(s["schedule"])
        if settings.tick_seconds == 0:
            continue
        if settings.tick_seconds is not None:
            interval = settings.tick_seconds
        elif rule_rate is not None:
            interval = float(rule_rate)
        else:
            interval = 60.0
            log(f"schedule {s['rule_name']}: {s['schedule']} is fired every 60 s locally "
                "(only rate() is followed; set LOCAL_TICK_SECONDS to change it)")
        schedules.append(Schedule(
            function=s["function"],
            binary=s["binary"],
            rule_arn=f"arn:aws:events:{region}:{account}:rule/{s['rule_name']}",
            expression=s["schedule"],
            interval_seconds=interval,
            input=s.get("input"),
            function_timeout=int(s.get("function_timeout", 60)),
        ))
    return mappings, schedules


# ---------------------------------------------------------------------------------------------
# Events, as Lambda and EventBridge build them


def lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """ReceiveMessage's MessageAttributes in the SQS event's spelling."""
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        item: dict[str, Any] = {"stringListValues": [], "binaryListValues": [],
                                "dataType": value["DataType"]}
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            item["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
        out[name] = item
    return out


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": lambda_message_attributes(message.get("MessageAttributes") or {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def utc_iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_event(schedule: Schedule, slot: float, account: str, region: str) -> Any:
    if schedule.input is not None:  # a rule's Input replaces the event, as in EventBridge
        return json.loads(schedule.input) if isinstance(schedule.input, str) else schedule.input
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": utc_iso(slot),
        "region": region,
        "resources": [schedule.rule_arn],
        "detail": {},
    }


def next_slot(now: float, interval: float) -> float:
    """The first multiple of `interval` (since the epoch) after `now`: a rate(1 minute) rule
    fires on whole minutes, and `time` names that slot."""
    return (math.floor(now / interval) + 1) * interval


# ---------------------------------------------------------------------------------------------
# Invoking, and what to delete afterwards


@dataclass
class Invocation:
    status: int | None  # None: no HTTP answer
    function_error: str | None
    body: bytes
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status != 200 or self.function_error is not None


def invoke(endpoint: str, binary: str, payload: Any, timeout: float) -> Invocation:
    request = urllib.request.Request(
        f"{endpoint}/2015-03-31/functions/{binary}/invocations",
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - local
            return Invocation(response.status, response.headers.get("X-Amz-Function-Error"), response.read())
    except urllib.error.HTTPError as e:
        return Invocation(e.code, e.headers.get("X-Amz-Function-Error"), e.read())
    except (urllib.error.URLError, OSError) as e:
        return Invocation(None, None, b"", error=str(getattr(e, "reason", e)))


@dataclass
class Settlement:
    delete: list[str]  # message ids
    outcome: str
    detail: str = ""


def settle(result: Invocation, message_ids: list[str], report_batch_item_failures: bool) -> Settlement:
    """Which messages Lambda deletes after an invocation (standard queues)."""
    if result.status is None:
        return Settlement([], "unreachable", result.error or "")
    if result.function_error is not None:
        return Settlement([], "function-error", f"{result.function_error}: {_snippet(result.body)}")
    if result.status != 200:
        return Settlement([], f"http-{result.status}", _snippet(result.body))
    if not report_batch_item_failures:
        return Settlement(list(message_ids), "ok")
    # Partial batch responses: an empty or null response, or an empty or null list, is a
    # complete success; an unreadable response or a bad itemIdentifier fails the whole batch.
    text = result.body.decode("utf-8", "replace").strip()
    if not text:
        return Settlement(list(message_ids), "ok")
    try:
        response = json.loads(text)
    except ValueError:
        return Settlement([], "bad-response", f"not JSON: {_snippet(result.body)}")
    if response is None:
        return Settlement(list(message_ids), "ok")
    if not isinstance(response, dict):
        return Settlement([], "bad-response", f"not an object: {_snippet(result.body)}")
    failures = response.get("batchItemFailures")
    if not failures:
        return Settlement(list(message_ids), "ok")
    if not isinstance(failures, list):
        return Settlement([], "bad-response", "batchItemFailures is not a list")
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return Settlement([], "bad-response", f"itemIdentifier {identifier!r} names no message of the batch")
        failed.add(identifier)
    return Settlement([m for m in message_ids if m not in failed], "partial", f"failed={len(failed)}")


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace").replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------------------------
# The poller


@dataclass
class Batch:
    mapping: QueueMapping
    messages: list[dict[str, Any]]
    settled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Poller:
    def __init__(self, settings: Settings, mappings: list[QueueMapping], schedules: list[Schedule],
                 account: str):
        import boto3
        from botocore.config import Config

        self.settings = settings
        self.mappings = mappings
        self.schedules = schedules
        self.account = account
        self.stopping = threading.Event()
        self.in_flight: set[int] = set()
        self.batches: dict[int, Batch] = {}
        self.state_lock = threading.Lock()
        self.sqs = boto3.client(
            "sqs",
            endpoint_url=settings.aws_endpoint,
            region_name=settings.region,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"},
                          max_pool_connections=max(10, sum(m.concurrency for m in mappings) + 4)),
        )
        workers = sum(m.concurrency for m in mappings) or 1
        self.deliveries = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="delivery")
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for mapping in self.mappings:
            log(f"polling queue={mapping.queue_name} function={mapping.binary} "
                f"batch={mapping.batch_size} window={mapping.batching_window_seconds}s "
                f"report_failures={str(mapping.report_batch_item_failures).lower()} "
                f"concurrency={mapping.concurrency}")
            self._thread(f"receive-{mapping.queue_name}", self._receive_loop, mapping)
        for schedule in self.schedules:
            log(f"ticking rule={schedule.rule_arn.rsplit('/', 1)[-1]} function={schedule.binary} "
                f"every={schedule.interval_seconds:g}s ({schedule.expression})")
            self._thread(f"tick-{schedule.binary}", self._tick_loop, schedule)
        if not self.mappings and not self.schedules:
            log("nothing to deliver: no SQS or Schedule events (or ticks off)")

    def _thread(self, name: str, target: Any, arg: Any) -> None:
        thread = threading.Thread(target=target, args=(arg,), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    # -- SQS ----------------------------------------------------------------------------------

    def _receive(self, mapping: QueueMapping, count: int, wait: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=mapping.queue_url,
            MaxNumberOfMessages=min(count, SQS_RECEIVE_MAX),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return response.get("Messages") or []

    def _collect(self, mapping: QueueMapping) -> list[dict[str, Any]]:
        """One batch: what one receive gives, topped up until the batch is full or the batching
        window has passed (Lambda waits up to MaximumBatchingWindowInSeconds)."""
        messages = self._receive(mapping, mapping.batch_size, self.settings.wait_seconds)
        if not messages or mapping.batching_window_seconds <= 0:
            return messages
        deadline = time.monotonic() + mapping.batching_window_seconds
        while len(messages) < mapping.batch_size and not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = self._receive(mapping, mapping.batch_size - len(messages), 0)
            if more:
                messages.extend(more)
            else:
                self.stopping.wait(min(left, self.settings.idle_seconds))
        return messages

    def _receive_loop(self, mapping: QueueMapping) -> None:
        slots = threading.Semaphore(mapping.concurrency)
        failures = 0
        while not self.stopping.is_set():
            if not slots.acquire(timeout=0.5):
                continue
            try:
                messages = self._collect(mapping)
                failures = 0
            except Exception as e:  # moto down or restarting: keep trying, but say so
                slots.release()
                failures += 1
                if failures == 1 or failures % 30 == 0:
                    log(f"receive queue={mapping.queue_name} failed ({type(e).__name__}: {e}); retrying")
                self.stopping.wait(min(5.0, self.settings.idle_seconds * failures))
                continue
            if not messages:
                slots.release()
                self.stopping.wait(self.settings.idle_seconds)
                continue
            batch = Batch(mapping, messages)
            with self.state_lock:
                self.batches[id(batch)] = batch

            def run(b: Batch = batch) -> None:
                try:
                    self._deliver(b)
                except Exception as e:  # a bug here must not stop the queue's polling
                    log(f"delivery queue={b.mapping.queue_name} crashed: {type(e).__name__}: {e}")
                finally:
                    with self.state_lock:
                        self.batches.pop(id(b), None)
                    slots.release()

            self.deliveries.submit(run)

    def _deliver(self, batch: Batch) -> None:
        mapping = batch.mapping
        event = {"Records": [sqs_record(m, mapping.queue_arn, self.settings.region) for m in batch.messages]}
        ids = [m["MessageId"] for m in batch.messages]
        started = time.monotonic()
        result = invoke(self.settings.lambda_endpoint, mapping.binary, event, mapping.function_timeout + 30)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        settlement = settle(result, ids, mapping.report_batch_item_failures)
        with batch.lock:
            if batch.settled:  # the poller is stopping and already handed these back
                return
            batch.settled = True
        handles = {m["MessageId"]: m["ReceiptHandle"] for m in batch.messages}
        delete_error = self._delete(mapping, [(i, handles[i]) for i in settlement.delete])
        receives = ",".join(str(m.get("Attributes", {}).get("ApproximateReceiveCount", "?")) for m in batch.messages)
        line = (f"delivery queue={mapping.queue_name} function={mapping.binary} messages={len(ids)} "
                f"outcome={settlement.outcome} deleted={len(settlement.delete)} receives={receives} "
                f"ms={elapsed_ms}")
        if settlement.detail:
            line += f" detail={settlement.detail}"
        if delete_error:
            line += f" delete_error={delete_error}"
        log(line)

    def _delete(self, mapping: QueueMapping, entries: list[tuple[str, str]]) -> str | None:
        problems = []
        for start in range(0, len(entries), SQS_RECEIVE_MAX):
            chunk = entries[start:start + SQS_RECEIVE_MAX]
            try:
                response = self.sqs.delete_message_batch(
                    QueueUrl=mapping.queue_url,
                    Entries=[{"Id": str(n), "ReceiptHandle": handle} for n, (_, handle) in enumerate(chunk)],
                )
                problems += [f"{f.get('Code')}" for f in response.get("Failed") or []]
            except Exception as e:
                problems.append(f"{type(e).__name__}: {e}")
        return "; ".join(problems) or None

    # -- Schedules ----------------------------------------------------------------------------

    def _tick_loop(self, schedule: Schedule) -> None:
        slot = next_slot(time.time(), schedule.interval_seconds)
        while not self.stopping.wait(max(0.0, slot - time.time())):
            threading.Thread(target=self._tick, args=(schedule, slot), name=f"tick-{slot}", daemon=True).start()
            # A slot missed while the machine slept is skipped, as a late rule fires once.
            slot = next_slot(max(time.time(), slot), schedule.interval_seconds)

    def _tick(self, schedule: Schedule, slot: float) -> None:
        event = scheduled_event(schedule, slot, self.account, self.settings.region)
        started = time.monotonic()
        result = invoke(self.settings.lambda_endpoint, schedule.binary, event, schedule.function_timeout + 30)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        if result.status is None:
            outcome, detail = "unreachable", result.error or ""
        elif result.failed:
            outcome = "function-error" if result.function_error else f"http-{result.status}"
            detail = _snippet(result.body)
        else:
            outcome, detail = "ok", ""
        line = (f"tick rule={schedule.rule_arn.rsplit('/', 1)[-1]} function={schedule.binary} "
                f"time={utc_iso(slot)} outcome={outcome} ms={elapsed_ms}")
        log(line + (f" detail={detail}" if detail else ""))

    # -- Stopping -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop receiving; give running deliveries a moment, then make the messages of those
        still running visible again, so they are redelivered now rather than after the
        visibility timeout (the function may still finish them: at-least-once, as in AWS)."""
        self.stopping.set()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline:
            with self.state_lock:
                if not self.batches:
                    break
            time.sleep(0.1)
        with self.state_lock:
            pending = list(self.batches.values())
        for batch in pending:
            with batch.lock:
                if batch.settled:
                    continue
                batch.settled = True
            try:
                self.sqs.change_message_visibility_batch(
                    QueueUrl=batch.mapping.queue_url,
                    Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                             for n, m in enumerate(batch.messages)],
                )
                log(f"stopping: {len(batch.messages)} message(s) of queue={batch.mapping.queue_name} "
                    "still in a delivery; made visible again")
            except Exception as e:
                log(f"stopping: could not hand back messages of queue={batch.mapping.queue_name}: {e}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--event-sources", type=Path, required=True,
                    help="JSON written by scripts/provision.py --event-sources-file")
    ap.add_argument("--env-file", type=Path, required=True, help="the stack's env file (endpoints, keys)")
    args = ap.parse_args()

    # The process environment (LOCAL_TICK_SECONDS and friends) wins over the env file.
    env = {**read_env_file(args.env_file), **{k: v for k, v in os.environ.items() if k.startswith("LOCAL_")}}
    settings = load_settings(env)
    mappings, schedules = load_event_sources(args.event_sources, settings)
    sources = json.loads(args.event_sources.read_text(encoding="utf-8"))
    poller = Poller(settings, mappings, schedules, sources.get("account_id", "123456789012"))

    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log(f"poller up: lambda={settings.lambda_endpoint} aws={settings.aws_endpoint} "
        f"ticks={'off' if settings.tick_seconds == 0 else (settings.tick_seconds or 'rule rate')}")
    poller.start()
    while not stop_requested.wait(1.0):
        pass
    log("poller stopping")
    poller.stop()
    log("poller stopped")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PollerError as e:
        log(f"error: {e}")
        sys.exit(1)
