"""MNS publish-to-delivery latency on the local cloud, against moto's SNS→SQS/HTTP as baseline.

Two paths, each over N messages sent one at a time (so the figures are latencies, not
throughput), timed from just before PublishMessage to the moment the consumer has the message:
- topic → HTTP endpoint subscription (SIMPLIFIED) → a small HTTP receiver;
- topic → queue subscription → a consumer already long-polling the queue.
The baseline runs the same two paths on moto's ThreadedMotoServer through boto3 in the same
run; the ratio is local p50 / moto p50 (below 1 means the local MNS is faster).

Run: ``python bench/bench_mns.py [--messages 200]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mns.account
from mns.queue import QueueMeta
from mns.subscription import SubscriptionMeta
from mns.topic import TopicMessage, TopicMeta

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.mns import MnsService


class _Arrivals:
    """Records when each message body reached a consumer."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.changed = threading.Condition()

    def record(self, body: str) -> None:
        now = time.perf_counter()
        with self.changed:
            self.at.setdefault(body, now)
            self.changed.notify_all()

    def wait(self, body: str, timeout: float = 10) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: body in self.at, timeout):
                raise TimeoutError(f"message {body!r} never arrived")
            return self.at[body]


def _http_receiver(arrivals: _Arrivals, extract: Callable[[bytes], str | None]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            message = extract(body)
            if message is not None:
                arrivals.record(message)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _measure(messages: int, publish: Callable[[str], None], arrivals: _Arrivals) -> list[float]:
    latencies = []
    for i in range(messages):
        body = f"bench-{i}"
        started = time.perf_counter()
        publish(body)
        latencies.append((arrivals.wait(body) - started) * 1000)
    return latencies


def _summary(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def _local(messages: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as state:
        account = Account.new()
        service = MnsService(Path(state), account)
        server = ServiceServer(service).start()
        client = mns.account.Account(server.url, account.access_key_id, account.access_key_secret)
        topic = client.get_topic("bench")
        topic.create(TopicMeta())
        results = {}

        arrivals = _Arrivals()
        receiver = _http_receiver(arrivals, lambda body: body.decode())
        topic.get_subscription("http").subscribe(
            SubscriptionMeta(
                f"http://127.0.0.1:{receiver.server_address[1]}/", notify_content_format="SIMPLIFIED"
            )
        )
        results["topic → HTTP endpoint"] = _measure(
            messages, lambda b: topic.publish_message(TopicMessage(b)), arrivals
        )
        topic.get_subscription("http").unsubscribe()
        receiver.shutdown()
        receiver.server_close()

        client.get_queue("bench").create(QueueMeta())
        topic.get_subscription("queue").subscribe(
            SubscriptionMeta(
                f"acs:mns:{account.region}:{account.account_id}:queues/bench",
                notify_content_format="SIMPLIFIED",
            )
        )
        arrivals = _Arrivals()
        stop = threading.Event()

        def consume() -> None:
            queue = mns.account.Account(
                server.url, account.access_key_id, account.access_key_secret
            ).get_queue("bench")
            queue.set_encoding(False)
            while not stop.is_set():
                try:
                    message = queue.receive_message(wait_seconds=1)
                except mns.mns_exception.MNSServerException:
                    continue
                arrivals.record(message.message_body)
                queue.delete_message(message.receipt_handle)

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        results["topic → queue → long poll"] = _measure(
            messages, lambda b: topic.publish_message(TopicMessage(b)), arrivals
        )
        stop.set()
        consumer.join()
        server.stop()
        service.close()
        return results


def _moto(messages: int) -> dict[str, list[float]]:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    sns = boto3.client("sns", region_name="us-east-1", endpoint_url=endpoint)
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
    topic_arn = sns.create_topic(Name="bench")["TopicArn"]
    results = {}

    arrivals = _Arrivals()
    receiver = _http_receiver(arrivals, lambda body: json.loads(body).get("Message"))
    http_subscription = sns.subscribe(
        TopicArn=topic_arn, Protocol="http", Endpoint=f"http://127.0.0.1:{receiver.server_address[1]}/"
    )["SubscriptionArn"]
    results["topic → HTTP endpoint"] = _measure(
        messages, lambda b: sns.publish(TopicArn=topic_arn, Message=b), arrivals
    )
    sns.unsubscribe(SubscriptionArn=http_subscription)
    receiver.shutdown()
    receiver.server_close()

    queue_url = sqs.create_queue(QueueName="bench")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    arrivals = _Arrivals()
    stop = threading.Event()

    def consume() -> None:
        consumer_sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
        while not stop.is_set():
            for message in consumer_sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get(
                "Messages", []
            ):
                arrivals.record(message["Body"])
                consumer_sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    results["topic → queue → long poll"] = _measure(
        messages, lambda b: sns.publish(TopicArn=topic_arn, Message=b), arrivals
    )
    stop.set()
    consumer.join()
    moto.stop()
    return results


def bench_mns(messages: int = 200) -> dict[str, dict[str, float]]:
    """Measure both paths locally and on moto; print a table and return the figures (ms)."""
    local, baseline = _local(messages), _moto(messages)
    figures = {}
    print(f"MNS publish-to-delivery latency, {messages} messages one at a time (ms)")
    print(f"{'path':<28}{'local p50':>10}{'local p95':>10}{'moto p50':>10}{'moto p95':>10}{'p50 ratio':>11}")
    for path, latencies in local.items():
        p50, p95 = _summary(latencies)
        m50, m95 = _summary(baseline[path])
        figures[path] = {
            "local_p50": p50,
            "local_p95": p95,
            "moto_p50": m50,
            "moto_p95": m95,
            "ratio": p50 / m50,
        }
        print(f"{path:<28}{p50:>10.2f}{p95:>10.2f}{m50:>10.2f}{m95:>10.2f}{p50 / m50:>10.2f}x")
    print("ratio = local p50 / moto p50 (moto: SNS→HTTP and SNS→SQS via boto3 on ThreadedMotoServer)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200)
    bench_mns(parser.parse_args().messages)


if __name__ == "__main__":
    main()
