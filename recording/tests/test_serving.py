"""A video server's agent serves its own recordings: signed, within its storage, nothing else."""

import hashlib
import http.client
import socket
import time
from datetime import UTC, datetime

import pytest
import requests

from recording import remote, serving, signing
from recording.models import Segment
from recording.segments import segment_path
from recording.serving import RecordingServer
from testbed.waiting import wait_for

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


# -- the watch endpoint: the agent's liveness, held open --------------------------------------


@pytest.fixture
def alive_server(recorded_site, monkeypatch):
    """srv-a's recordings server, keep-alives every 50 ms; the test stops it (or the teardown does)."""
    monkeypatch.setattr(serving, "ALIVE_KEEPALIVE", 0.05)
    server = recorded_site["a"]
    recordings = RecordingServer(server, server.storage_dir, "127.0.0.1", server.api_port)
    recordings.start()
    yield recordings
    recordings.stop()


def watch_connection(port: int) -> tuple[socket.socket, bytes]:
    """A ``GET /alive`` connection and what came back up to the end of the first line of the body."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /alive HTTP/1.1\r\nHost: srv-a\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or b"\n" not in answer.partition(b"\r\n\r\n")[2]:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return sock, answer


def read_until_closed(sock: socket.socket) -> bytes:
    rest = b""
    while chunk := sock.recv(4096):
        rest += chunk
    return rest


def test_alive_answers_at_once_with_the_server_s_name_and_holds_until_the_agent_stops(alive_server):
    sock, answer = watch_connection(alive_server.port)
    with sock:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body == b"srv-a\n"
        assert b"token" not in head.lower()  # no signature asked for liveness
        assert sock.recv(1) == b"\n"  # kept alive while it waits
        alive_server.stop()
        sock.settimeout(2)
        assert set(read_until_closed(sock)) <= {ord("\n")}  # then closed: nothing but keep-alives before


def test_watch_connections_are_bounded_and_a_closed_one_frees_its_place(alive_server):
    held = [watch_connection(alive_server.port)[0] for _ in range(serving.MAX_WATCHERS)]
    try:
        extra, answer = watch_connection(alive_server.port)
        with extra:
            assert answer.startswith(b"HTTP/1.1 503")
        held.pop().close()

        def one_more_answered() -> bool:
            sock, again = watch_connection(alive_server.port)
            held.append(sock)
            return again.startswith(b"HTTP/1.1 200")

        wait_for(one_more_answered, 5, message="the freed watch place taken")
        # The recordings are served meanwhile, the watchers' threads notwithstanding.
        assert raw_get(alive_server.server, "/recordings/1/") == 403
    finally:
        for sock in held:
            sock.close()
