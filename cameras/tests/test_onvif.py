"""The simulated RTSP cameras' ONVIF media service, as a recorder's client meets it: profiles, the stream
URI, a keyframe on request, SOAP faults and WS-Security digests."""

import base64
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import av
import pytest

from recording.onvif import MediaService, OnvifError, OnvifFault, matching_profile, password_digest, security_header
from recording.streamcopy import open_options
from simulation.sei import read_identity

SOAP = "{http://www.w3.org/2003/05/soap-envelope}"


def raw_soap(url: str, body: str, header: str = "") -> tuple[int, ET.Element]:
    """A hand-made request, read without the agent's client: the HTTP status and the parsed envelope."""
    envelope = (f'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
                f'xmlns:trt="http://www.onvif.org/ver10/media/wsdl"><s:Header>{header}</s:Header>'
                f"<s:Body>{body}</s:Body></s:Envelope>")  # fmt: skip
    request = urllib.request.Request(url, envelope.encode(), {"Content-Type": "application/soap+xml"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, ET.fromstring(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, ET.fromstring(error.read())


def fault_codes(envelope: ET.Element) -> list[str]:
    codes, code = [], envelope.find(f"{SOAP}Body/{SOAP}Fault/{SOAP}Code")
    while code is not None:
        codes.append(code.findtext(f"{SOAP}Value"))
        code = code.find(f"{SOAP}Subcode")
    return codes


def test_the_password_digest_is_the_one_of_the_onvif_core_specification():
    """The worked example of the ONVIF Core Specification (5.12.2, user token profile)."""
    nonce = base64.b64decode("LKqI6G/AikKCQrN0zqZFlg==")
    assert password_digest(nonce, "2010-09-16T07:50:45Z", "userpassword") == "tuOSpGlFlIXsozq4HFNeeGeFLEI="


def test_the_media_service_lists_its_profile_and_stream_and_faults_an_unknown_token(simulator):
    sim = simulator(2, codecs=("h264", "mjpeg"), gop_seconds=1.0)
    camera = sim.simulator.cameras[1]
    service = MediaService(camera.onvif_url)
    assert service.profile_tokens() == ["main"]
    assert service.stream_uri("main") == camera.url
    assert matching_profile(service, camera.url) == "main"

    status, envelope = raw_soap(camera.onvif_url, "<trt:SetSynchronizationPoint><trt:ProfileToken>sub"
                                                  "</trt:ProfileToken></trt:SetSynchronizationPoint>")  # fmt: skip
    assert status == 400 and fault_codes(envelope) == ["env:Sender", "ter:InvalidArgVal", "ter:NoProfile"]
    with pytest.raises(OnvifFault) as fault:
        service.stream_uri("sub")
    assert fault.value.codes == ("Sender", "InvalidArgVal", "NoProfile")
    with pytest.raises(OnvifFault) as fault:
        service.call("<trt:GetSnapshotUri><trt:ProfileToken>main</trt:ProfileToken></trt:GetSnapshotUri>")
    assert fault.value.codes == ("Receiver", "ActionNotSupported")
    assert sim.call(sim.simulator.describe())[0]["keyframes_forced"] == 0, "a fault forces nothing"

    # Only RTSP cameras have the service; a stopped camera answers nothing.
    with pytest.raises(OnvifError, match="HTTP 404"):
        MediaService(camera.onvif_url.replace("/onvif/1/", "/onvif/2/")).profile_tokens()
    sim.set_state(1, "stopped")
    with pytest.raises(OnvifError):
        service.profile_tokens()


def test_a_camera_with_credentials_wants_a_fresh_digest_of_them(simulator):
    sim = simulator(1, codecs=("h265",), gop_seconds=1.0, onvif_credentials=("admin", "s3cret&<"))
    url = sim.simulator.cameras[1].onvif_url
    assert MediaService(url, "admin", "s3cret&<").profile_tokens() == ["main"]
    for username, password in (("admin", "wrong"), ("root", "s3cret&<"), ("", "")):
        with pytest.raises(OnvifFault) as fault:
            MediaService(url, username, password).profile_tokens()
        assert fault.value.codes == ("Sender", "NotAuthorized")
    for age, status_wanted in ((0, 200), (3600, 400)):  # a digest an hour old is not taken again
        header = security_header("admin", "s3cret&<", now=time.time() - age).replace("env:", "s:")
        status, envelope = raw_soap(url, "<trt:GetProfiles/>", header)
        assert status == status_wanted
    assert fault_codes(envelope) == ["env:Sender", "ter:NotAuthorized"]


def test_set_synchronization_point_makes_the_next_frame_a_keyframe_and_the_counter_goes_on(simulator):
    sim = simulator(1, codecs=("h264",), fps=25.0, gop_seconds=4.0)
    camera = sim.simulator.cameras[1]
    service = MediaService(camera.onvif_url)
    with av.open(camera.url, options=open_options("tcp", 4000, 4000)) as container:
        packets = container.demux(container.streams.video[0])
        first = next(p for p in packets if p.size)
        asked = time.monotonic()
        service.set_synchronization_point("main")
        frames = [(read_identity(bytes(first))[0], bool(first.is_keyframe))]
        for packet in packets:
            if packet.size:
                frames.append((read_identity(bytes(packet))[0], bool(packet.is_keyframe)))
            if frames[-1][1]:
                break
        waited = time.monotonic() - asked
        frames += [(read_identity(bytes(p))[0], bool(p.is_keyframe)) for _, p in zip(range(3), packets, strict=False)]
    counters = [counter for counter, _ in frames]
    assert counters == list(range(counters[0], counters[0] + len(counters))), "the identities go on, contiguous"
    assert waited < 0.5, f"the keyframe came {waited:.2f} s after the request, with a keyframe every 4 s"
    assert sim.call(sim.simulator.describe())[0]["keyframes_forced"] <= 1
