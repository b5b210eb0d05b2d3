"""Cameras → Import from CSV: upload, a preview of every row checked, then Create, which checks again."""

import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from cameras import imports
from servers.models import Server
from utilities.encryption import decrypt, encrypt

PENDING = "camera-import"  # the session's key: the previewed file, encrypted (it holds camera passwords)


def _may_add(request):
    if not request.user.has_perm("cameras.add_camera"):
        raise PermissionDenied


def _page(request, status=200, **context):
    context = {"columns": imports.COLUMNS, "max_rows": imports.MAX_ROWS,
               "max_megabytes": imports.MAX_BYTES // 1_000_000, **context}  # fmt: skip
    return render(request, "cameras/import.html", context, status=status)


@login_required
def camera_import(request):
    """GET: the upload form. POST: the uploaded file read and every row checked, nothing stored; a file whose
    rows are all good is kept (in the session) for Create."""
    _may_add(request)
    if request.method != "POST":
        return _page(request)
    request.session.pop(PENDING, None)
    upload = request.FILES.get("file")
    if upload is None:
        return _page(request, 400, problem="Choose a CSV file to upload.")
    try:
        camera_file = imports.read_csv(upload.read(imports.MAX_BYTES + 1))
    except imports.ImportFileError as exc:
        return _page(request, 400, problem=str(exc), filename=upload.name)
    result = imports.check(camera_file, request.user)
    token = ""
    if result.ok:
        token = secrets.token_urlsafe(16)
        request.session[PENDING] = {"token": token, "text": encrypt(camera_file.text), "filename": upload.name}
    return _page(request, 200 if result.ok else 400, result=result, token=token, filename=upload.name)


@require_POST
@login_required
def camera_import_create(request):
    """The previewed file checked again against what is stored now (a server deleted, a camera added meanwhile),
    then every camera created in one transaction, or none."""
    _may_add(request)
    pending = request.session.get(PENDING)
    if not pending or not secrets.compare_digest(pending["token"], request.POST.get("token", "")):
        messages.error(request, "This preview is no longer the file waiting to be created (another file was "
                                "uploaded since, or the session ended): nothing was created. Upload it again.")
        return redirect("cameras:import")
    camera_file = imports.read_text(decrypt(pending["text"]))
    result = imports.check(camera_file, request.user, create=True)
    request.session.pop(PENDING, None)
    if not result.created:
        return _page(request, 409, result=result, filename=pending["filename"], changed=True)
    count = len(result.rows)
    messages.success(request, f"{count} camera{'s' if count != 1 else ''} created from {pending['filename']}.")
    return redirect("cameras:list")


@login_required
def camera_import_template(request):
    """A CSV with the header and one example row, on the user's own servers."""
    _may_add(request)
    response = HttpResponse(imports.template_csv(Server.objects.restrict(request.user)),
                            content_type="text/csv; charset=utf-8")  # fmt: skip
    response["Content-Disposition"] = 'attachment; filename="cameras-template.csv"'
    return response
