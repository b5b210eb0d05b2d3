from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import CAPACITY, requires
from accounts.querysets import allowed_systems
from cameras.services import BackupAssignmentError
from capacity.api.serializers import (
    CapacityPlanSerializer,
    CapacityQuerySerializer,
    EstimateQuerySerializer,
    EstimateSerializer,
    ProposalRequestSerializer,
    ProposalSerializer,
)
from capacity.estimates import estimate
from capacity.inputs import load_site
from capacity.planner import plan
from capacity.proposal import apply, propose


class CapacityView(APIView):
    permission_classes = [requires(*CAPACITY)]
    throttle_scope = "capacity"

    @extend_schema(
        parameters=[CapacityQuerySerializer],
        responses=CapacityPlanSerializer,
        description="Every server's normal load and worst-case load after a single (and, with pairs=true, a "
        "double) server failure, against its capacity figures, with license use and warnings.",
    )
    def get(self, request):
        query = CapacityQuerySerializer(data=request.query_params, context={"request": request})
        query.is_valid(raise_exception=True)
        system = query.validated_data.get("system")
        site = load_site(system.pk if system else None, systems=allowed_systems(request.user))
        capacity_plan = plan(site, pairs=query.validated_data["pairs"])
        return Response(CapacityPlanSerializer(capacity_plan).data)


class EstimateView(APIView):
    permission_classes = [requires(*CAPACITY)]

    @extend_schema(
        parameters=[EstimateQuerySerializer],
        responses=EstimateSerializer,
        description="The calculator: bitrate, storage and CPU of one camera from its video settings.",
    )
    def get(self, request):
        query = EstimateQuerySerializer(data=request.query_params.dict() | {
            "analytics": request.query_params.getlist("analytics")})  # fmt: skip
        query.is_valid(raise_exception=True)
        data = query.validated_data
        result = estimate(data["codec"], data["width"], data["height"], data["fps"], data.get("quality", "medium"),
                          data["analytics"], data.get("expected_bitrate_kbps"))  # fmt: skip
        body = {
            **{name: getattr(result, name) for name in ("stream_kbps", "stream_source", "estimated_kbps",
                                                         "recorded_kbps", "storage_gb_per_day", "ingest_cores",
                                                         "analytics_cores", "analytics_decode_cores",
                                                         "cores_on_primary")},
            "storage_gb_for_retention": result.storage_gb_per_day * data["retention_hours"] / 24,
        }  # fmt: skip
        return Response(EstimateSerializer(body).data)


class CanAssignBackups(permissions.BasePermission):
    def has_permission(self, request, view):
        return request.user.has_perm("cameras.change_camera")


class ProposalView(APIView):
    permission_classes = [requires(*CAPACITY), CanAssignBackups]
    throttle_scope = "capacity-proposal"  # a proposal prices every camera against every server

    @extend_schema(
        request=ProposalRequestSerializer,
        responses={200: ProposalSerializer, 400: None},
        description="Propose backup servers that keep the worst single failure lowest within the rules and "
        "capacity figures. With apply=true the proposal is stored at once (all or nothing); otherwise post its "
        "assignments to /api/cameras/assign-backup/ after review.",
    )
    def post(self, request):
        body = ProposalRequestSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        system = body.validated_data.get("system")
        proposal = propose(load_site(system.pk if system else None, systems=allowed_systems(request.user)),
                           body.validated_data["scope"])  # fmt: skip
        applied = False
        if body.validated_data["apply"] and proposal.changes:
            try:
                apply(proposal)
            except BackupAssignmentError as exc:
                errors = {str(proposal.changes[i].camera): messages for i, messages in exc.errors.items()}
                return Response({"assignments": errors}, status=status.HTTP_400_BAD_REQUEST)
            applied = True
        data = {
            **{name: getattr(proposal, name) for name in ("scope", "changes", "kept", "peak_before", "peak_after",
                                                         "assignments")},
            "unplaced": [{"camera": camera, "reason": reason} for camera, reason in proposal.unplaced],
            "applied": applied,
        }  # fmt: skip
        return Response(ProposalSerializer(data).data)
