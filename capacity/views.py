"""The Capacity page: load per server against its capacity, the calculator and backup proposals."""

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from accounts.permissions import CAPACITY, view_required
from accounts.querysets import allowed_systems, may_see
from cameras.models import Camera
from cameras.services import BackupAssignment, BackupAssignmentError, assign_backups
from capacity import coefficients
from capacity.estimates import estimate
from capacity.forms import CalculatorForm, CapacityFiguresForm, ProposalForm
from capacity.inputs import DIMENSION_LABELS, DIMENSIONS, load_site
from capacity.planner import plan
from capacity.proposal import propose
from servers.models import MultiserverSystem, Server
from utilities.ids import query_id


@dataclass(frozen=True)
class Bar:
    name: str
    normal: float
    worst: float
    capacity: float | None
    normal_pct: float
    worst_pct: float
    capacity_pct: float | None
    over: bool


def chart(capacity_plan, dimension: str) -> list[Bar]:
    """Normal and worst-case load per server as a share of its own capacity, so a small server reads
    as well as a big one; servers without a capacity figure are drawn against the largest of them."""
    rows = []
    for p in capacity_plan.servers:
        worst = (p.worst_pair or p.worst or p.normal) if capacity_plan.pairs else (p.worst or p.normal)
        rows.append((p, p.normal.figures.get(dimension), worst.figures.get(dimension), p.capacity[dimension]))
    axis = max([1.25, *(w / c for _, _, w, c in rows if c)])  # in shares of capacity
    unmeasured = max([w for _, _, w, c in rows if not c] or [0]) or 1
    bars = []
    for p, normal, worst, capacity in rows:
        full = capacity or unmeasured  # what 100 % of capacity means on this row
        bars.append(Bar(p.server.name, normal, worst, capacity, 100 * normal / full / axis,
                        100 * worst / full / axis, 100 / axis if capacity else None,
                        bool(capacity and worst > capacity)))  # fmt: skip
    return bars


def _system_filter(request):
    value = request.GET.get("system", "") or request.POST.get("system", "")
    system_id = query_id(value)
    return system_id if system_id is not None and may_see(request.user, system_id) else None


def _site(request, system_id):
    return load_site(system_id, systems=allowed_systems(request.user))


@login_required
@view_required(*CAPACITY)
def capacity_page(request):
    system_id = _system_filter(request)
    pairs = request.GET.get("pairs") == "1"
    dimension = request.GET.get("dimension", "mbps")
    dimension = dimension if dimension in DIMENSIONS else "mbps"
    capacity_plan = plan(_site(request, system_id), pairs=pairs)
    context = {
        "plan": capacity_plan,
        "bars": chart(capacity_plan, dimension),
        "dimension": dimension,
        "dimension_label": DIMENSION_LABELS[dimension],
        "dimensions": DIMENSION_LABELS,
        "systems": MultiserverSystem.objects.restrict(request.user),
        "system_id": system_id,
        "pairs": pairs,
        "calculator": CalculatorForm(),
        "proposal_form": ProposalForm(initial={"system": system_id}, user=request.user),
        "coefficients": coefficients.TABLE,
        "can_assign": request.user.has_perm("cameras.change_camera"),
    }
    if request.htmx and request.htmx.target == "capacity-chart":
        return render(request, "capacity/_chart.html", context)
    return render(request, "capacity/capacity.html", context)


@login_required
@view_required(*CAPACITY)
def calculator(request):
    form = CalculatorForm(request.GET)
    if not form.is_valid():
        return render(request, "capacity/_calculator.html", {"calculator": form}, status=400)
    data = form.cleaned_data
    result = estimate(data["codec"], data["width"], data["height"], data["fps"], data["quality"], data["analytics"],
                      data["expected_bitrate_kbps"])  # fmt: skip
    storage = result.storage_gb_per_day * data["retention_hours"] / 24
    return render(request, "capacity/_calculator.html", {"calculator": form, "result": result, "storage": storage})


@require_POST
@login_required
@view_required(*CAPACITY)
def proposal(request):
    if not request.user.has_perm("cameras.change_camera"):
        raise PermissionDenied
    form = ProposalForm(request.POST, user=request.user)
    if not form.is_valid():
        return render(request, "capacity/_proposal.html", {"proposal_form": form}, status=400)
    system = form.cleaned_data["system"]
    result = propose(_site(request, system.pk if system else None), form.cleaned_data["scope"])
    return render(request, "capacity/_proposal.html", {"proposal_form": form, "proposal": result})


@require_POST
@login_required
def apply_proposal(request):
    """Store the proposal the operator saw, through the Cameras tab's bulk-assignment path."""
    if not request.user.has_perm("cameras.change_camera"):
        raise PermissionDenied
    assignments = []
    for key, value in request.POST.items():
        if key.startswith("assign-") and query_id(key[7:]) and query_id(value):
            assignments.append(BackupAssignment(query_id(key[7:]), query_id(value)))
    if not assignments:
        return render(request, "capacity/_applied.html", {"error": "Nothing to apply."}, status=400)
    try:
        changed = assign_backups(
            assignments,
            cameras=Camera.objects.restrict(request.user),
            servers=Server.objects.restrict(request.user),
        )
    except BackupAssignmentError as exc:
        errors = [message for messages in exc.errors.values() for message in messages]
        return render(request, "capacity/_applied.html", {"errors": errors}, status=400)
    return render(request, "capacity/_applied.html", {"changed": len(changed)})


@login_required
@view_required(*CAPACITY)
def server_capacity(request, pk):
    """One server's cameras with their bitrates side by side, and its capacity figures."""
    server = get_object_or_404(Server.objects.select_related("system").restrict(request.user), pk=pk)
    can_edit = request.user.has_perm("servers.change_server")
    form = CapacityFiguresForm(instance=server, read_only=not can_edit)
    status, saved = 200, False
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied
        form = CapacityFiguresForm(request.POST, instance=server)
        if form.is_valid():
            form.save()
            saved = True
        else:
            status = 400
            server.refresh_from_db()
    site = load_site(server.system_id)
    server_plan = next(p for p in plan(site, pairs=True).servers if p.server.pk == server.pk)
    names = {s.pk: s.name for s in site.servers.values()}
    cameras = [
        {
            "camera": camera,
            "estimate": site.estimates[camera.id],
            "role": "primary" if camera.primary_id == pk else "backup",
            "partner": names.get(camera.backup_id if camera.primary_id == pk else camera.primary_id),
            "mode": site.mode_of(camera),
        }  # fmt: skip
        for camera in site.cameras
        if pk in (camera.primary_id, camera.backup_id)
    ]
    context = {"server": server, "server_plan": server_plan, "form": form, "cameras": cameras, "saved": saved,
               "can_edit": can_edit, "dimensions": DIMENSION_LABELS}  # fmt: skip
    return render(request, "capacity/server.html", context, status=status)
