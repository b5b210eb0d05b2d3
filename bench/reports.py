"""How long the Reports page takes to read a period: a month of segments for hundreds of cameras.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_reports .venv/bin/python bench/reports.py \
        [--cameras 200] [--days 30] [--segment-seconds 60] [--repeat 3]

On a scratch database (the one DATABASE_URL names is flushed: never a site's), it writes the recording
index of N cameras on two servers, a segment every ``--segment-seconds`` over the days, with a hole of 30 s
a day per camera, by SQL (generate_series on PostgreSQL). It then times ``reports.reading.histories`` (what
the page and its CSV compute: failovers, time on backup, video lost) over the whole period, median of the
repeats, once with the index the migrations make (camera, start, with the ends INCLUDEd on PostgreSQL) and
once with a plain (camera, start) index in its place, and checks both find the same holes. The table is
vacuumed after each step, as autovacuum does an insert-mostly table: the covering index is read alone only
where the table's visibility map says its pages are all visible. Results: a table
on stdout and JSON in bench/out/.
"""

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta

from common import OUT, empty_site
from django.db import connection  # noqa: E402

from cameras.models import Camera  # noqa: E402
from reports import reading  # noqa: E402
from servers.models import MultiserverSystem, Server  # noqa: E402

COVERING, PLAIN = "segment_camera_start_end", "bench_segment_camera_start"


def build(cameras: int, days: int, segment_seconds: int, until: datetime) -> int:
    system = MultiserverSystem.objects.create(name="Bench")
    a = Server.objects.create(name="srv-a", system=system, address="127.0.0.1", api_port=19001)
    b = Server.objects.create(name="srv-b", system=system, address="127.0.0.1", api_port=19002)
    Camera.objects.bulk_create([Camera(name=f"cam-{n:04d}", stream_url=f"rtsp://127.0.0.1:8554/cam{n}", fps=25,
                                       primary_server=a, backup_server=b) for n in range(cameras)])  # fmt: skip
    since = until - timedelta(days=days)
    with connection.cursor() as cursor:
        # Each camera: a segment every segment_seconds, none in the 30 s after each day's first hour.
        cursor.execute(
            """INSERT INTO recording_segment (camera_id, server_id, started_at, ended_at, frame_count, size_bytes,
                                              path, recorded_by_id)
               SELECT c.id, %s, t, t + make_interval(secs => %s - 0.04), %s * 25, 0,
                      'bench/' || c.id || '/' || extract(epoch FROM t)::bigint, NULL
               FROM cameras_camera c, generate_series(%s::timestamptz, %s::timestamptz - interval '1 second',
                                                      make_interval(secs => %s)) t
               WHERE NOT (t - date_trunc('day', t) >= interval '1 hour'
                          AND t - date_trunc('day', t) < interval '1 hour' + make_interval(secs => 30))""",
            [a.pk, segment_seconds, segment_seconds, since, until, segment_seconds],
        )
        rows = cursor.rowcount
        cursor.execute("VACUUM ANALYZE recording_segment")
    return rows


def timed(since, until, repeat: int) -> tuple[float, int]:
    cameras = Camera.objects.select_related("primary_server", "backup_server").order_by("name")
    times, holes = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        histories = reading.histories(cameras, since, until, until)
        times.append(time.perf_counter() - began)
        holes = sum(len(h.gaps) for h in histories)
    return statistics.median(times), holes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--segment-seconds", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("bench: set DATABASE_URL to a scratch PostgreSQL database (it is flushed)")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    empty_site()
    until = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = until - timedelta(days=args.days)
    began = time.perf_counter()
    rows = build(args.cameras, args.days, args.segment_seconds, until)
    print(f"{rows} segments of {args.cameras} cameras over {args.days} days in {time.perf_counter() - began:.0f} s")
    covering, holes = timed(since, until, args.repeat)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {COVERING}")
        cursor.execute(f"CREATE INDEX {PLAIN} ON recording_segment (camera_id, started_at)")
        cursor.execute("VACUUM ANALYZE recording_segment")
    try:
        plain, plain_holes = timed(since, until, args.repeat)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX IF EXISTS {PLAIN}")
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {COVERING} ON recording_segment (camera_id, started_at) "
                           "INCLUDE (ended_at)")  # fmt: skip
            cursor.execute("ANALYZE recording_segment")
    expected = args.cameras * args.days
    assert holes == plain_holes, (holes, plain_holes)
    print(f"holes found: {holes} (written: {expected}, the one at each day's first hour)")
    print(f"{'index':<34}{'median s':>10}")
    print(f"{'(camera, start) INCLUDE (end)':<34}{covering:>10.1f}")
    print(f"{'(camera, start)':<34}{plain:>10.1f}")
    print(f"ratio plain / covering: {plain / covering:.1f}")
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"cameras": args.cameras, "days": args.days, "segment_seconds": args.segment_seconds, "segments": rows,
              "holes": holes, "covering_seconds": covering, "plain_seconds": plain}  # fmt: skip
    (OUT / "reports.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
