"""A video server's agent serves its own recordings: signed, within its storage, nothing else."""

import hashlib
import http.client
import time
from datetime import UTC, datetime

import pytest
import requests

from recording import remote, signing
from recording.models import Segment
from recording.segments import segment_path
from recording.serving import RecordingServer

# The agent answers on threads of its own, with connections of their own: the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served(recorded_site, make_camera):
    """srv-a's agent's recordings server with one segment of one camera on disk and in the index."""
    server = recorded_site["a"]
    camera = make_camera(server, recorded_site["b"])
    started = time.time() - 30
    path = segment_path(server.storage_dir, camera.pk, started, ".ts")
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(range(256)) * 40)
    segment = Segment.objects.create(camera=camera, server=server, started_at=datetime.fromtimestamp(started, UTC),
                                     ended_at=datetime.fromtimestamp(started + 10, UTC), frame_count=250,
                                     size_bytes=10240, path=str(path))  # fmt: skip
    recordings = RecordingServer(server, server.storage_dir, "127.0.0.1", server.api_port)
    recordings.start()
    yield {"server": server, "camera": camera, "segment": segment, "path": path, "other": recorded_site["b"]}
    recordings.stop()


def raw_get(server, target: str) -> int:
    """The status of a request sent exactly as written (no client tidies its path)."""
    connection = http.client.HTTPConnection(server.address, server.api_port, timeout=5)
    try:
        connection.request("GET", target)
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_signed_request_gets_the_segment_list_and_its_bytes_with_ranges(served):
    segment, data = served["segment"], served["path"].read_bytes()
    listed = remote.list_segments(served["server"], served["camera"].pk, time.time() - 60, time.time())
    assert [(item["name"], item["frame_count"], item["recorded_by"]) for item in listed] == [
        ("/".join(served["path"].parts[-2:]), 250, "srv-a")
    ]
    assert remote.fetch(segment) == (data, hashlib.sha256(data).hexdigest())  # checked against the server's SHA-256
    part = remote.open_stream(segment, (100, 199))
    assert (part.status_code, part.headers["Content-Range"], part.content) == (206, f"bytes 100-199/{len(data)}",
                                                                               data[100:200])  # fmt: skip
    tail = remote.open_stream(segment, (len(data) - 10, None))
    assert tail.content == data[-10:]
    full = requests.get(remote.segment_url(segment), headers={"X-Want-SHA256": "1"}, timeout=5)
    assert full.headers["X-Content-SHA256"] == hashlib.sha256(data).hexdigest()


def test_a_range_past_the_end_is_refused(served):
    url = remote.segment_url(served["segment"])
    answer = requests.get(url, headers={"Range": "bytes=999999-"}, timeout=5)
    assert (answer.status_code, answer.headers["Content-Range"]) == (416, f"bytes */{served['path'].stat().st_size}")


def test_without_a_valid_signature_nothing_is_served(served):
    server, camera = served["server"], served["camera"]
    address = remote.segment_name(served["segment"])
    expired = signing.token(server.name, camera.pk, clock=lambda: time.time() - 120)
    tokens = {
        "none": "",
        "forged": signing.token(server.name, camera.pk)[:-4] + "AAAA",
        "expired": expired,
        "another camera's": signing.token(server.name, camera.pk + 1),
        "another server's": signing.token(served["other"].name, camera.pk),
    }
    for kind, token in tokens.items():
        for target in (f"/recordings/{address}?token={token}", f"/recordings/{camera.pk}/?token={token}"):
            assert raw_get(server, target) == 403, f"{kind} token on {target}"


@pytest.mark.parametrize("target", [
    "/recordings/{camera}/../../../etc/passwd",
    "/recordings/{camera}/{day}/../../{camera}/{day}/{name}",
    "/recordings/{camera}/%2e%2e/%2e%2e/etc/passwd",
    "/etc/passwd",
    "//etc/passwd",
    "/recordings//etc/passwd",
    "/recordings/{camera}/{day}/{stem}.txt",
    "/recordings/{camera}/index-spool.jsonl",
])  # fmt: skip
def test_paths_that_are_not_a_recording_s_address_are_refused(served, target):
    camera, path = served["camera"], served["path"]
    token = signing.token(served["server"].name, camera.pk)
    target = target.format(camera=camera.pk, day=path.parent.name, name=path.name, stem=path.stem)
    assert raw_get(served["server"], f"{target}?token={token}") == 400


def test_a_segment_no_longer_on_disk_is_not_found(served):
    served["path"].unlink()
    token = signing.token(served["server"].name, served["camera"].pk)
    assert raw_get(served["server"], f"/recordings/{remote.segment_name(served['segment'])}?token={token}") == 404
    assert remote.list_segments(served["server"], served["camera"].pk) == []


def test_a_request_that_closes_its_connection_is_told_the_connection_closes(served):
    url = remote.segment_url(served["segment"])
    closing = requests.get(url, headers={"Connection": "close"}, timeout=5)
    assert (closing.status_code, closing.headers.get("Connection")) == (200, "close")
    assert requests.get(url, timeout=5).headers.get("Connection") != "close"  # HTTP/1.1 keeps it open
