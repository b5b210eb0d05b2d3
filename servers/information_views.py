"""A server's Information tab: what it records and backs up, its state and recent events, and its
Backup (redundancy) section, previewed as ticked and applied whole."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from accounts.permissions import view_required
from cameras.models import Camera
from cameras.modes import server_warnings
from recording.models import BackupCheck, StreamHealth
from redundancy.models import Event, ServerState
from redundancy.readiness import last_checks
from servers.forms import RedundancySettingsForm
from servers.models import Server


def _server_page(request, server, form=None, applied=(), open_mail_setup="", status=200):
    """The Information tab; HTMX posts swap its whole content, so the camera tables follow the settings."""
    backed_up = list(Camera.objects.with_servers().filter(backup_server=server))
    primary_of = list(Camera.objects.with_servers().filter(primary_server=server))
    licensing = server.licensing()
    can_configure = request.user.has_perm("servers.change_redundancysettings")
    form = form or RedundancySettingsForm(instance=server.redundancy, read_only=not can_configure)
    checks = last_checks([camera.pk for camera in backed_up])
    for camera in backed_up:
        camera.backup_check = checks.get(camera.pk)
    context = {
        "server": server,
        "licensing": licensing,
        "form": form,
        "preview": _backup_preview(server, form, before_apply=False),
        "backed_up": backed_up,
        "primary_of": primary_of,
        "can_configure": can_configure,
        "applied": applied,
        "open_mail_setup": open_mail_setup,
        "state": ServerState.objects.filter(server=server).first(),
        "can_operate": request.user.has_perm("redundancy.change_serverstate"),
        "recent_events": Event.objects.filter(Q(server=server) | Q(to_server=server)).select_related("camera")[:10],
    }
    return render(request, "servers/server_information.html", context, status=status)


def _backup_preview(server, form, before_apply=True) -> dict:
    """The warnings of the Backup (redundancy) settings as ticked in ``form`` (stored ones if unbound), and,
    ``before_apply``, what Apply would do or refuse; nothing is stored. A copy of the server and its cameras
    carries the ticked flags, so the rules (cameras.modes) judge the state the operator is about to apply."""
    ticked = _servers_copy(server)
    for name, value in form.ticked.items():
        setattr(ticked.redundancy, name, value)
    backed_up = list(Camera.objects.with_servers().filter(backup_server=server))
    primary_of = list(Camera.objects.with_servers().filter(primary_server=server))
    for camera in backed_up:
        camera.backup_server = ticked
    for camera in primary_of:
        camera.primary_server = ticked
    warnings = server_warnings(ticked, backed_up, primary_of, ticked.licensing())
    # What the agents measured: a camera that turns this server's connection away is not protected by it; one
    # it backs up that lowers its frame rate while both servers read it is recorded with fewer frames.
    warnings += [health.refusal_warning() for health in StreamHealth.objects.refused().filter(server=server)]
    warnings += [
        drop.warning() for drop in StreamHealth.objects.filter(camera__backup_server=server).frame_rate_drops()
    ]
    # Its readiness checks: a camera it backs up that it cannot open would not be recorded by a failover.
    warnings += [check.warning() for check in BackupCheck.objects.failed().filter(server=server)]
    flags = ticked.redundancy
    if flags.fast_redundancy and not flags.constant_redundancy and not backed_up:
        # Rule 5; with cameras backed up, server_warnings names the primaries that still lack it.
        warnings.append("Fast mode works only where the primary server of a camera has fast redundancy on too.")
    return {
        "before_apply": before_apply,
        "change": form.change_summary() if before_apply else "",
        "refusals": [
            f"{form.label(name)} — {error}" if name in form.fields else error
            for name, errors in form.errors.items()
            for error in errors
        ],
        "needs_mail_setup": form.needs_mail_setup,
        # Already on, yet mail no longer works: nothing is refused, but nothing is sent either.
        "mail_missing": flags.email_notifications and not form.needs_mail_setup and not form.mail_works(),
        "warnings": warnings,
    }


def _servers_copy(server):
    return Server.objects.with_settings().get(pk=server.pk)


@login_required
@view_required("servers.view_server", "cameras.view_camera")
def server_information(request, pk):
    server = get_object_or_404(Server.objects.with_settings().restrict(request.user), pk=pk)
    if request.GET.get("preview"):
        # The boxes as ticked, before Apply: only the warnings and what Apply would do, nothing stored.
        form = RedundancySettingsForm(request.GET, instance=_servers_copy(server).redundancy)
        form.is_valid()
        context = {"server": server, "preview": _backup_preview(server, form)}
        return render(request, "servers/_backup_preview.html", context)
    return _server_page(request, server)


@require_POST
@login_required
@permission_required("servers.change_redundancysettings", raise_exception=True)
def backup_settings(request, pk):
    """Apply the Backup (redundancy) section whole, or store nothing and say why for each part."""
    server = get_object_or_404(Server.objects.with_settings().restrict(request.user), pk=pk)
    # A copy is changed, so the page shows the stored settings beside a refused form.
    form = RedundancySettingsForm(request.POST, instance=_servers_copy(server).redundancy)
    if not form.is_valid():
        if not form.needs_mail_setup:
            return _server_page(request, server, form, status=400)
        mail_url = reverse("servers:mail-settings", args=[server.system_id]) + "?" + urlencode(
            {"enable_for": server.pk, **form.pending()})  # fmt: skip
        if not request.htmx:
            return redirect(mail_url)
        return _server_page(request, server, form, open_mail_setup=mail_url, status=400)
    applied = form.applied() or ["Nothing changed: the settings were already so."]
    form.save()
    if not request.htmx:
        messages.success(request, f"Backup (redundancy) settings of {server.name} applied: {' '.join(applied)}")
        return redirect("servers:server", server.pk)
    return _server_page(request, _servers_copy(server), applied=applied)
