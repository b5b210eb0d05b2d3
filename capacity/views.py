"""The Capacity page: load per server against its capacity, the calculator and backup proposals."""

from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.permissions import CAPACITY, view_required
from accounts.querysets import allowed_systems, may_see
from cameras.models import Camera
from cameras.services import BackupAssignment, BackupAssignmentError, assign_backups
from capacity import coefficients
from capacity.estimates import estimate
from capacity.forms import CalculatorForm, CapacityFiguresForm, ProposalForm
from capacity.headline import tightest
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


def _dimension(value) -> str | None:
    return value if value in DIMENSIONS else None


def _state(request, system_id, pairs: bool, dimension: str | None, scope: str | None = "unassigned") -> dict:
    """What the page shows of the configuration as stored now: headline, chart, table and the proposal,
    from one read of the site. The chart opens on the headline's resource unless one was chosen; without a
    ``scope`` nothing is proposed."""
    site = _site(request, system_id)
    capacity_plan = plan(site, pairs=pairs)
    headline = tightest(capacity_plan)
    shown = dimension or (headline.dimension if headline else "mbps")
    can_assign = request.user.has_perm("cameras.change_camera")
    return {
        "plan": capacity_plan,
        "headline": headline,
        "bars": chart(capacity_plan, shown),
        "dimension": shown,
        "dimension_chosen": dimension is not None,
        "dimension_label": DIMENSION_LABELS[shown],
        "dimensions": DIMENSION_LABELS,
        "system_id": system_id,
        "pairs": pairs,
        "can_assign": can_assign,
        "proposal": propose(site, scope) if can_assign and scope else None,
    }


@login_required
@view_required(*CAPACITY)
def capacity_page(request):
    system_id = _system_filter(request)
    chart_only = request.htmx and request.htmx.target == "capacity-chart"
    pairs, dimension = request.GET.get("pairs") == "1", _dimension(request.GET.get("dimension"))
    context = _state(request, system_id, pairs, dimension, None if chart_only else "unassigned")
    if chart_only:
        return render(request, "capacity/_chart.html", context)
    context.update(
        systems=MultiserverSystem.objects.restrict(request.user),
        calculator=CalculatorForm(),
        proposal_form=ProposalForm(initial={"system": system_id, "scope": "unassigned"}, user=request.user),
        coefficients=coefficients.TABLE,
    )
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


def _proposal_form(request) -> ProposalForm:
    data = request.POST.copy()
    data.setdefault("scope", "unassigned")
    return ProposalForm(data, user=request.user)


@require_POST
@login_required
@view_required(*CAPACITY)
def proposal(request):
    if not request.user.has_perm("cameras.change_camera"):
        raise PermissionDenied
    form = _proposal_form(request)
    context = {"proposal_form": form, "pairs": request.POST.get("pairs") == "1",
               "dimension": _dimension(request.POST.get("dimension"))}  # fmt: skip
    if not form.is_valid():
        return render(request, "capacity/_proposal.html", context, status=400)
    system = form.cleaned_data["system"]
    context["proposal"] = propose(_site(request, system.pk if system else None), form.cleaned_data["scope"])
    return render(request, "capacity/_proposal.html", context)


@require_POST
@login_required
@view_required(*CAPACITY)
def apply_proposal(request):
    """Store the proposal the operator saw, through the Cameras tab's bulk-assignment path (all or nothing),
    and answer with the page's new state: the proposal's part, and headline, chart and table out of band."""
    if not request.user.has_perm("cameras.change_camera"):
        raise PermissionDenied
    form = _proposal_form(request)
    pairs, dimension = request.POST.get("pairs") == "1", _dimension(request.POST.get("dimension"))
    if not form.is_valid():
        return render(request, "capacity/_proposal.html", {"proposal_form": form, "pairs": pairs}, status=400)
    assignments = []
    for key, value in request.POST.items():
        if key.startswith("assign-") and query_id(key[7:]) and query_id(value):
            assignments.append(BackupAssignment(query_id(key[7:]), query_id(value)))
    errors, changed = [], []
    if not assignments:
        errors = ["Nothing to apply: the proposal named no camera."]
    else:
        try:
            changed = assign_backups(
                assignments,
                cameras=Camera.objects.restrict(request.user),
                servers=Server.objects.restrict(request.user),
            )
        except BackupAssignmentError as exc:
            errors = [message for messages in exc.errors.values() for message in messages]
    system = form.cleaned_data["system"]
    if not errors and not request.htmx:
        messages.success(request, f"Applied: the backup server of {len(changed)} camera(s) changed.")
        query = urlencode({k: v for k, v in (("system", system.pk if system else ""), ("pairs", "1" if pairs else ""),
                                             ("dimension", dimension or "")) if v})  # fmt: skip
        return redirect(reverse("capacity:page") + (f"?{query}" if query else ""))
    context = _state(request, system.pk if system else None, pairs, dimension, form.cleaned_data["scope"])
    context.update(proposal_form=form, applied=len(changed), errors=errors)
    if request.htmx:
        return render(request, "capacity/_applied.html", context, status=400 if errors else 200)
    context.update(systems=MultiserverSystem.objects.restrict(request.user), calculator=CalculatorForm(),
                   coefficients=coefficients.TABLE)  # fmt: skip
    return render(request, "capacity/capacity.html", context, status=400)


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
