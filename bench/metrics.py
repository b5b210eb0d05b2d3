"""What the web tier's video-lost metric costs a scrape: the last hour's recording index of hundreds of cameras.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_metrics .venv/bin/python bench/metrics.py \
        [--cameras 500] [--segment-seconds 10] [--repeat 5]

On a scratch database (the one DATABASE_URL names is flushed: never a site's), it writes two hours of the index of
N cameras, a segment every ``--segment-seconds`` (the agents' default length), with a hole of 30 s per camera in
the last hour, by SQL, and ten minutes ahead so that the bench's own minutes leave no hole at the end. It then
times one reading of ``reports.metrics.VideoLostCollector`` (the ``eocortex_video_lost_seconds`` family that
``/metrics`` serves, read at most once a minute per process), median of the repeats, and the whole text
exposition of the web tier's registry (the first scrape of a minute reads the index, the later ones do not), and
checks that every camera's 30 s are found. Results: a table on stdout and JSON in bench/out/.
"""

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta

from common import OUT, empty_site
from django.db import connection  # noqa: E402
from prometheus_client import REGISTRY, generate_latest  # noqa: E402

from accounts.models import AuditEntry  # noqa: E402
from cameras.models import Camera  # noqa: E402
from reports.metrics import VideoLostCollector  # noqa: E402
from servers.models import MultiserverSystem, Server  # noqa: E402


def build(cameras: int, segment_seconds: int, until: datetime) -> int:
    system = MultiserverSystem.objects.create(name="Bench")
    a = Server.objects.create(name="srv-a", system=system, address="127.0.0.1", api_port=19001)
    b = Server.objects.create(name="srv-b", system=system, address="127.0.0.1", api_port=19002)
    Camera.objects.bulk_create([Camera(name=f"cam-{n:04d}", stream_url=f"rtsp://127.0.0.1:8554/cam{n}", fps=25,
                                       primary_server=a, backup_server=b) for n in range(cameras)])  # fmt: skip
    AuditEntry.objects.all().delete()  # no history: the cameras existed and were enabled all along
    since, hole = until - timedelta(hours=2), until - timedelta(minutes=30)
    until += timedelta(minutes=10)  # past the readings' "now": the bench's own minutes are no hole at the end
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO recording_segment (camera_id, server_id, started_at, ended_at, frame_count, size_bytes,
                                              path, recorded_by_id)
               SELECT c.id, %s, t, t + make_interval(secs => %s - 0.04), %s * 25, 0,
                      'bench/' || c.id || '/' || extract(epoch FROM t)::bigint, NULL
               FROM cameras_camera c, generate_series(%s::timestamptz, %s::timestamptz, make_interval(secs => %s)) t
               WHERE NOT (t >= %s::timestamptz AND t < %s::timestamptz + interval '30 seconds')""",
            [a.pk, segment_seconds, segment_seconds, since, until, segment_seconds, hole, hole],
        )
        rows = cursor.rowcount
        cursor.execute("VACUUM ANALYZE recording_segment")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=500)
    parser.add_argument("--segment-seconds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("bench: set DATABASE_URL to a scratch PostgreSQL database (it is flushed)")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    empty_site()
    rows = build(args.cameras, args.segment_seconds, datetime.now(UTC))
    print(f"{rows} segments of {args.cameras} cameras over the last two hours")
    reads, lost = [], []
    for _ in range(args.repeat):
        collector = VideoLostCollector(read_every=0)
        began = time.perf_counter()
        [family] = list(collector.collect())
        reads.append(time.perf_counter() - began)
        lost = [sample.value for sample in family.samples]
    assert len(lost) == args.cameras and all(abs(seconds - 30) < 0.5 for seconds in lost), sorted(set(lost))[:5]
    pages = []  # the page as /metrics serves it: the first scrape reads the index, the next ones of the minute do not
    for _ in range(args.repeat + 1):
        began = time.perf_counter()
        generate_latest(REGISTRY)
        pages.append(time.perf_counter() - began)
    read, first, cached = statistics.median(reads), pages[0], statistics.median(pages[1:])
    print(f"{'reading':<44}{'median s':>10}")
    print(f"{'video lost, last hour, all cameras':<44}{read:>10.3f}")
    print(f"{'/metrics page, first of the minute':<44}{first:>10.3f}")
    print(f"{'/metrics page, later in the minute':<44}{cached:>10.4f}")
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"cameras": args.cameras, "segment_seconds": args.segment_seconds, "segments": rows,
              "video_lost_read_seconds": read, "page_first_seconds": first, "page_cached_seconds": cached}  # fmt: skip
    (OUT / "metrics.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
