"""The Export button of a camera's timeline: a job made from the page, its progress, then its download."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts.permissions import view_required
from cameras.models import Camera
from playback.api.views import EXPORTS
from playback.models import Export, range_problems


class ExportForm(forms.Form):
    since = forms.DateTimeField(help_text="ISO 8601 in UTC, e.g. 2026-12-01T10:00:00Z")
    until = forms.DateTimeField(help_text="At most 24 hours after the start.")

    def clean(self):
        data = super().clean()
        if "since" in data and "until" in data:
            for name, problem in range_problems(data["since"], data["until"]).items():
                self.add_error(name, problem)
        return data


@login_required
@view_required(*EXPORTS)
@require_http_methods(["GET", "POST"])
def export_camera(request, pk):
    """GET: the Export form; POST: queue an export of the range and answer with its progress."""
    camera = get_object_or_404(Camera.objects.with_servers().restrict(request.user), pk=pk)
    if request.method == "GET":
        return render(request, "playback/_export.html", {"camera": camera, "since": request.GET.get("since", ""),
                                                          "until": request.GET.get("until", "")})  # fmt: skip
    if not request.user.has_perm("playback.add_export"):
        raise PermissionDenied
    form = ExportForm(request.POST)
    if form.is_valid():
        try:
            job = Export.request(camera, request.user, form.cleaned_data["since"], form.cleaned_data["until"])
        except ValidationError as exc:
            for name, problems in exc.message_dict.items():
                for problem in problems:
                    form.add_error(name, problem)
        else:
            context = {"camera": camera, "since": form.cleaned_data["since"], "until": form.cleaned_data["until"],
                       **progress_context(job)}  # fmt: skip
            return render(request, "playback/_export.html", context, status=202)
    context = {"camera": camera, "form": form, "since": request.POST.get("since", ""),
               "until": request.POST.get("until", "")}  # fmt: skip
    return render(request, "playback/_export.html", context, status=400)


def progress_context(job: Export) -> dict:
    manifest = job.manifest or {}
    return {
        "job": job,
        "download_url": reverse("camera-export-download", args=[job.camera_id, job.pk]),
        "manifest_url": reverse("camera-export-manifest", args=[job.camera_id, job.pk]),
        "progress_url": reverse("exports:progress", args=[job.pk]),
        "percent": round(job.progress * 100),
        "servers": list(dict.fromkeys(span["server"] for span in manifest.get("spans", []))),
        "spans": manifest.get("spans", []),
        "gaps": manifest.get("gaps", []),
    }


@login_required
@view_required(*EXPORTS)
@require_http_methods(["GET"])
def export_progress(request, pk):
    """One export's progress (polled by the page each second until it is done), then its download."""
    jobs = Export.objects.select_related("camera").restrict(request.user)
    return render(request, "playback/_export_progress.html", progress_context(get_object_or_404(jobs, pk=pk)))
