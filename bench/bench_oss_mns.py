"""Local OSS (and MNS) throughput against moto as the baseline.

``python bench/bench_oss_mns.py [--seconds S]`` prints one table row per (operation, object
size): ops/s and MiB/s through oss2 against the local OSS, the same through boto3 against
moto's S3 server, and the ratio local/moto. Each measurement runs single-threaded on one
keep-alive connection for about ``--seconds`` (default 2), so the default run takes < 60 s.
Client-side integrity checks are off on both sides (oss2 ``enable_crc=False``; boto3 checksums
only "when_required"), so that the figures compare the servers, not the clients' CRC code.

The MNS half is ``bench_mns`` from ``bench/bench_mns.py``: publish-to-delivery latencies
(p50/p95) against moto's SNS→HTTP and SNS→SQS, printed as a second table after the OSS one
(latencies do not fit the ops/s rows above). ``--messages N`` sets its sample size (default 200).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import boto3
import oss2
from bench_mns import bench_mns  # bench/ is on sys.path when this script runs
from botocore.config import Config
from moto.server import ThreadedMotoServer

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.core.ports import free_port
from localcloud.oss import OssService

SIZES = {"1 KiB": 1024, "1 MiB": 1024 * 1024}


@dataclass
class Row:
    operation: str
    size: str
    local_ops: float
    local_mib: float
    baseline_ops: float
    baseline_mib: float

    @property
    def ratio(self) -> float:
        return self.local_ops / self.baseline_ops if self.baseline_ops else float("inf")


def _rate(action: Callable[[int], None], seconds: float) -> float:
    """Operations per second of ``action(i)`` over about ``seconds`` (after a short warm-up)."""
    for i in range(3):
        action(i)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        action(count)
        count += 1
    return count / (time.perf_counter() - start)


def bench_oss(seconds: float) -> list[Row]:
    """PUT and GET through oss2 on the local OSS versus boto3 on moto's S3 server."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as state:
        account = Account.new()
        service = OssService(Path(state), account)
        server = ServiceServer(service).start()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        moto.start()
        try:
            bucket = oss2.Bucket(
                oss2.Auth(account.access_key_id, account.access_key_secret),
                server.url,
                "bench",
                region=account.region,
                enable_crc=False,
            )
            bucket.create_bucket()
            s3 = boto3.client(
                "s3",
                endpoint_url=f"http://127.0.0.1:{moto._port}",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                region_name="us-east-1",
                config=Config(
                    request_checksum_calculation="when_required", response_checksum_validation="when_required"
                ),
            )
            s3.create_bucket(Bucket="bench")
            for label, size in SIZES.items():
                data = os.urandom(size)
                mib = size / (1024 * 1024)

                def put_local(i: int, d: bytes = data) -> None:
                    bucket.put_object(f"k/{i % 50}", d)

                def put_moto(i: int, d: bytes = data) -> None:
                    s3.put_object(Bucket="bench", Key=f"k/{i % 50}", Body=d)

                local_put = _rate(put_local, seconds)
                moto_put = _rate(put_moto, seconds)
                rows.append(Row("PUT", label, local_put, local_put * mib, moto_put, moto_put * mib))
                local_get = _rate(lambda i: bucket.get_object(f"k/{i % 50}").read(), seconds)
                moto_get = _rate(
                    lambda i: s3.get_object(Bucket="bench", Key=f"k/{i % 50}")["Body"].read(), seconds
                )
                rows.append(Row("GET", label, local_get, local_get * mib, moto_get, moto_get * mib))
        finally:
            moto.stop()
            server.stop()
            service.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement (default 2)")
    parser.add_argument("--messages", type=int, default=200, help="MNS latency samples (default 200)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    rows = bench_oss(args.seconds)
    header = f"{'operation':<14}{'size':>7}{'local ops/s':>13}{'local MiB/s':>13}{'moto ops/s':>12}{'moto MiB/s':>12}{'local/moto':>12}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.operation:<14}{r.size:>7}{r.local_ops:>13.1f}{r.local_mib:>13.1f}"
            f"{r.baseline_ops:>12.1f}{r.baseline_mib:>12.1f}{r.ratio:>11.2f}x"
        )
    print()
    bench_mns(args.messages)


if __name__ == "__main__":
    main()
