"""The way to a video server's recordings from elsewhere: signed HTTP to its agent (``recording.serving``).

The web application (playback, export) and other agents (merge-back) read recordings only through this:
nothing here opens a file. Every URL carries a token for that server and camera that lives a minute
(``recording.signing``).
"""

import hashlib
from pathlib import PurePath
from urllib.parse import urlencode

import requests
import urllib3

from recording import probe, signing
from recording.serving import FILE

TIMEOUT = (2.0, 15.0)  # connect, read (seconds)


class Unreachable(Exception):
    """The video server that holds a recording does not answer, refuses, or sent something else than asked."""


class ChecksumMismatch(Unreachable):
    """A segment's bytes arrived, but not the bytes its server said it sent."""


def base_url(server) -> str:
    host = f"[{server.address}]" if ":" in server.address else server.address
    return f"http://{host}:{server.api_port}"


def segment_name(segment) -> str:
    """``<camera>/<YYYY-MM-DD>/<HHMMSS.mmm>.<ts|mjpeg>``: the segment's address on its server."""
    day, name = PurePath(segment.path).parts[-2:]
    address = f"{segment.camera_id}/{day}/{name}"
    if FILE.fullmatch(f"/recordings/{address}") is None:
        raise Unreachable(f"segment {segment.pk} has no address a video server serves")
    return address


def segment_url(segment, lifetime: float = signing.LIFETIME) -> str:
    token = signing.token(segment.server.name, segment.camera_id, lifetime)
    return f"{base_url(segment.server)}/recordings/{segment_name(segment)}?{urlencode({'token': token})}"


def list_url(server, camera_id: int, since: float | None = None, until: float | None = None) -> str:
    query = {"token": signing.token(server.name, camera_id)}
    query |= {name: f"{value:.3f}" for name, value in (("since", since), ("until", until)) if value is not None}
    return f"{base_url(server)}/recordings/{camera_id}/?{urlencode(query)}"


def _get(url: str, **kwargs) -> requests.Response:
    try:
        response = requests.get(url, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise Unreachable(f"the video server does not answer ({type(exc).__name__})") from None
    if response.status_code not in (200, 206):
        response.close()
        raise Unreachable(f"the video server answered {response.status_code}")
    return response


def list_segments(server, camera_id: int, since: float | None = None, until: float | None = None) -> list[dict]:
    """The camera's segments ``server`` holds over the range, as its agent lists them."""
    try:
        return _get(list_url(server, camera_id, since, until)).json()["segments"]
    except (ValueError, KeyError):
        raise Unreachable("the video server's list of segments is unreadable") from None


def open_stream(segment, byte_range: tuple[int, int | None] | None = None) -> requests.Response:
    """The segment's bytes as a stream (``iter_content``); the caller closes it."""
    headers = {}
    if byte_range is not None:
        first, last = byte_range
        headers["Range"] = f"bytes={first}-{'' if last is None else last}"
    return _get(segment_url(segment), headers=headers, stream=True)


def fetch(segment) -> tuple[bytes, str]:
    """The whole segment and its SHA-256 (hex), checked against the one its server computed as it sent it."""
    server = segment.server.name
    try:
        response = requests.get(segment_url(segment), headers={"X-Want-SHA256": "1"}, timeout=TIMEOUT, stream=True)
        with response:
            if response.status_code != 200:
                raise Unreachable(f"the video server {server} answered {response.status_code}")
            data = response.raw.read(decode_content=True)  # one read: no chunks joined for a segment of megabytes
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise Unreachable(f"the video server {server} does not answer ({type(exc).__name__})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != response.headers.get("X-Content-SHA256"):
        raise ChecksumMismatch(f"segment {segment.pk} from {server} does not match the checksum its server sent")
    return data, digest


def probe_camera(server, camera_id: int, settings: probe.ProbeSettings) -> probe.ProbeResult:
    """Ask ``server``'s agent to open the stream ``settings`` name once (``recording.probe``) and say what came.
    Unreachable, in words, when the agent does not answer; its answer within the test's own bound."""
    url = f"{base_url(server)}/probe/{camera_id}/?{urlencode({'token': signing.token(server.name, camera_id)})}"
    body = probe.sealed_settings(settings, server.name, camera_id)
    wait = settings.timeout + probe.MEASURE_SECONDS + 4.0  # the agent's own bound, and its stop
    try:
        response = requests.post(url, data=body, timeout=(TIMEOUT[0], wait),
                                 headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    except requests.exceptions.ReadTimeout:
        raise Unreachable(f"the video server {server.name} did not answer within {wait:g} s") from None
    except requests.RequestException:
        raise Unreachable(f"the video server {server.name} does not answer at {server.address}:{server.api_port} "
                          "(is its agent running?)") from None  # fmt: skip
    with response:
        if response.status_code == 503:
            raise Unreachable(f"the video server {server.name} is testing other connections now: try again in a few "
                              "seconds")  # fmt: skip
        if response.status_code != 200:
            raise Unreachable(f"the video server {server.name} answered {response.status_code}")
        try:
            return probe.ProbeResult.from_json(response.json())
        except (ValueError, TypeError):
            raise Unreachable(f"the video server {server.name}'s answer is unreadable") from None
