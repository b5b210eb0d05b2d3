"""Exports through the API and the timeline page: a job, its progress, its download and manifest; who may."""

import hashlib
import shutil
import subprocess
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from accounts.models import SystemAccess
from accounts.roles import OPERATORS
from playback.models import Export
from playback.tasks import run_export
from playback.tests import test_export
from playback.tests.test_export import FPS, T0, at, decoded_counters, failed_over_and_back, record
from protocol import live
from testbed.processes import ROOT, procfile_command
from testbed.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

serving = test_export.serving  # srv-a's and srv-b's recording servers on loopback
RANGE = {"since": "2026-12-01T10:00:00Z", "until": "2026-12-01T10:00:18Z"}


@pytest.fixture(autouse=True)
def export_queue(settings, transactional_db):
    """A queue of this test's own (the broker is shared, and no other worker may take these jobs); the files its
    exports made go with it."""
    settings.EXPORT_QUEUE = f"export-test-{uuid.uuid4().hex[:8]}"
    yield settings.EXPORT_QUEUE
    live.client().delete(settings.EXPORT_QUEUE)  # what no worker took
    for job in Export.objects.all():
        shutil.rmtree(job.path().parent, ignore_errors=True)


def client_of(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.get(pk=user.pk))
    return client


@pytest.fixture
def operator(db):
    user = User.objects.create_user("olga", "olga@example.com", "a-long-test-passphrase")
    user.groups.add(Group.objects.get(name=OPERATORS))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def gate(serving, make_camera):
    """A camera whose primary failed over to its backup and came back: its recordings lie on both servers."""
    camera = make_camera(serving["a"], serving["b"], fps=FPS, name="gate")
    failed_over_and_back(camera, serving)
    return camera


def exports_url(camera) -> str:
    return f"/api/cameras/{camera.pk}/exports/"


@pytest.mark.process
def test_an_operator_exports_a_failover_through_the_export_worker_and_downloads_it(
    gate, operator, process_env, settings, tmp_path
):
    # The Procfile's export worker, on this test's own queue.
    command = procfile_command("export")
    command[command.index("-Q") + 1] = settings.EXPORT_QUEUE
    command[command.index("-n") + 1] = f"{settings.EXPORT_QUEUE}@%h"
    log = (tmp_path / "worker.log").open("w+")
    worker = subprocess.Popen(command, cwd=ROOT, env=process_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        api = client_of(operator)
        answer = api.post(exports_url(gate), RANGE, format="json")
        assert answer.status_code == 202, answer.content
        job = answer.json()
        assert (job["state"], job["progress"]) == ("queued", 0.0)
        assert job["links"]["download"].endswith(f"/api/cameras/{gate.pk}/exports/{job['id']}/download/")
        done = wait_for(lambda: (seen := api.get(job["links"]["self"]).json())["state"] in ("done", "failed") and seen,
                        60, interval=0.2, message="the export worker's job")  # fmt: skip
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        log.seek(0)
        console = log.read()
    assert done["state"] == "done", (done, console)
    assert done["progress"] == 1.0

    download = api.get(done["links"]["download"])
    assert download.status_code == 200
    assert download["Content-Type"] == "video/mp4"
    assert download["Content-Disposition"] == 'attachment; filename="gate_20261201T100000Z_20261201T100018Z.mp4"'
    data = b"".join(download.streaming_content)
    assert hashlib.sha256(data).hexdigest() == done["sha256"] and len(data) == done["size_bytes"]
    manifest = api.get(done["links"]["manifest"]).json()
    assert manifest["file"]["sha256"] == done["sha256"]
    assert [span["server"] for span in manifest["spans"]] == ["srv-a", "srv-b", "srv-a"]
    assert [gap["seconds"] for gap in manifest["gaps"]] == [1.5]
    saved = tmp_path / "download.mp4"
    saved.write_bytes(data)
    assert decoded_counters(saved) == [*range(0, 60), *range(75, 180)]
    assert [item["id"] for item in api.get(exports_url(gate)).json()["results"]] == [done["id"]]


def test_the_download_and_manifest_wait_until_the_export_is_done(gate, operator):
    api = client_of(operator)
    job = api.post(exports_url(gate), RANGE, format="json").json()
    for link in ("download", "manifest"):
        answer = api.get(job["links"][link])
        assert (answer.status_code, answer.json()) == (409, {"detail": "The export is queued; its file is there "
                                                                       "once it is done."})  # fmt: skip
    run_export(job["id"])  # what the export worker does with the message
    assert api.get(job["links"]["download"]).status_code == 200
    assert api.get(job["links"]["manifest"]).json()["frames"] == 165
    run_export(job["id"])  # a message delivered twice does the job once
    assert Export.objects.get(pk=job["id"]).finished_at is not None


def test_an_export_whose_server_does_not_answer_fails_with_the_reason(gate, operator, serving):
    serving["b"].api_port = 1  # nobody listens there
    serving["b"].save()
    api = client_of(operator)
    job = api.post(exports_url(gate), RANGE, format="json").json()
    run_export(job["id"])
    failed = api.get(job["links"]["self"]).json()
    assert failed["state"] == "failed" and "srv-b does not answer" in failed["error"]
    answer = api.get(job["links"]["download"])
    assert answer.status_code == 409 and "srv-b does not answer" in answer.json()["detail"]
    assert not Export.objects.get(pk=job["id"]).path().exists()


@pytest.mark.parametrize("body, field, message", [
    ({"since": "2026-12-01T10:00:18Z", "until": "2026-12-01T10:00:00Z"}, "until",
     "The end of the range must come after its start."),
    ({"since": "2026-12-01T10:00:00Z", "until": "2026-12-02T10:00:01Z"}, "until", "A range is at most 24 hours long."),
    ({"since": "yesterday", "until": "2026-12-01T10:00:00Z"}, "since",
     "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."),
    ({"until": "2026-12-01T10:00:00Z"}, "since", "This field is required."),
    ({"since": "2026-12-01T12:00:00Z", "until": "2026-12-01T13:00:00Z"}, "since",
     "Nothing was recorded of gate in this range."),
])  # fmt: skip
def test_a_range_that_cannot_be_exported_is_refused_with_a_reason_and_nothing_is_queued(
    gate, operator, body, field, message
):
    answer = client_of(operator).post(exports_url(gate), body, format="json")
    assert (answer.status_code, answer.json()) == (400, {field: [message]})
    assert not Export.objects.exists()


def test_viewers_see_exports_operators_make_them_a_user_in_no_role_neither(gate, operator, viewer):
    api = client_of(operator)
    job = api.post(exports_url(gate), RANGE, format="json").json()
    looker = client_of(viewer)
    assert looker.get(exports_url(gate)).status_code == 200
    assert looker.get(job["links"]["self"]).status_code == 200
    assert looker.post(exports_url(gate), RANGE, format="json").status_code == 403
    nobody = client_of(User.objects.create_user("nobody", "nobody@example.com", "a-long-test-passphrase"))
    for url in (exports_url(gate), job["links"]["self"], job["links"]["download"], job["links"]["manifest"]):
        assert nobody.get(url).status_code == 403, url
    assert nobody.post(exports_url(gate), RANGE, format="json").status_code == 403
    assert Export.objects.count() == 1


def test_another_systems_camera_and_its_exports_are_not_found(gate, operator, site, make_camera):
    theirs = make_camera(site["other"], name="theirs")
    record(theirs, site["other"], range(0, 20))
    their_job = Export.objects.create(camera=theirs, since=T0, until=at(20))
    SystemAccess.objects.create(user=operator, system=site["system"])
    api = client_of(operator)
    base = f"/api/cameras/{theirs.pk}/exports/"
    for url in (base, f"{base}{their_job.pk}/", f"{base}{their_job.pk}/download/", f"{base}{their_job.pk}/manifest/"):
        assert api.get(url).status_code == 404, url
    assert api.post(base, RANGE, format="json").status_code == 404
    # Nor under one's own camera's address.
    mine = f"/api/cameras/{gate.pk}/exports/{their_job.pk}/"
    assert api.get(mine).status_code == 404 and api.get(f"{mine}download/").status_code == 404
    assert Export.objects.count() == 1


# -- the timeline page's Export button ---------------------------------------------------------------------


def test_the_export_button_queues_a_job_whose_progress_ends_with_the_download(gate, operator, client):
    client.force_login(operator)
    form = client.get(f"/cameras/{gate.pk}/export/", {"since": RANGE["since"], "until": RANGE["until"]})
    assert form.status_code == 200 and b'name="since"' in form.content
    answer = client.post(f"/cameras/{gate.pk}/export/", RANGE, headers={"HX-Request": "true"})
    assert answer.status_code == 202
    page = answer.content.decode()
    job = Export.objects.get()
    assert f'hx-get="/exports/{job.pk}/"' in page and 'hx-trigger="every 1s"' in page
    assert "<script" not in page, "an htmx answer brings no script again"
    run_export(job.pk)
    done = client.get(f"/exports/{job.pk}/", headers={"HX-Request": "true"}).content.decode()
    job.refresh_from_db()
    assert "hx-trigger" not in done, "no more polling once done"
    assert f'href="/api/cameras/{gate.pk}/exports/{job.pk}/download/"' in done
    assert "Servers: srv-a, srv-b" in done and job.sha256 in done
    assert "nothing recorded for 1.5 s" in done


def test_the_export_button_refuses_a_bad_range_with_a_reason(gate, operator, client):
    client.force_login(operator)
    answer = client.post(f"/cameras/{gate.pk}/export/", {"since": RANGE["until"], "until": RANGE["since"]},
                         headers={"HX-Request": "true"})  # fmt: skip
    assert answer.status_code == 400
    assert "The end of the range must come after its start." in answer.content.decode()
    assert not Export.objects.exists()


def test_the_export_button_is_for_operators_and_within_the_users_systems(gate, viewer, operator, site, make_camera,
                                                                         client):  # fmt: skip
    client.force_login(viewer)
    assert client.post(f"/cameras/{gate.pk}/export/", RANGE).status_code == 403
    theirs = make_camera(site["other"], name="theirs")
    their_job = Export.objects.create(camera=theirs, since=T0, until=T0 + timedelta(seconds=20))
    SystemAccess.objects.create(user=operator, system=site["system"])
    client.force_login(operator)
    assert client.post(f"/cameras/{theirs.pk}/export/", RANGE).status_code == 404
    assert client.get(f"/exports/{their_job.pk}/").status_code == 404
    assert Export.objects.count() == 1


def test_the_playback_page_has_the_export_button_for_who_may_export_only(gate, viewer, operator, client):
    client.force_login(operator)
    page = client.get(f"/cameras/{gate.pk}/timeline/").content.decode()
    assert f'action="/cameras/{gate.pk}/export/"' in page and "Export MP4" in page
    client.force_login(viewer)
    page = client.get(f"/cameras/{gate.pk}/timeline/")
    assert page.status_code == 200 and "Export MP4" not in page.content.decode()
