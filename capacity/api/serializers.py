from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.scope import ScopedChoicesMixin
from cameras.models import AnalyticsModule, Camera, validate_analytics
from capacity.headline import tightest
from capacity.inputs import CALCULATOR_BOUNDS, DIMENSIONS
from capacity.proposal import SCOPES
from servers.models import MultiserverSystem


def _bounds(name: str) -> dict:
    bound = CALCULATOR_BOUNDS[name]
    return {"min_value": bound.smallest, "max_value": bound.largest, "error_messages": bound.messages()}


class FiguresSerializer(serializers.Serializer):
    mbps = serializers.FloatField(help_text="Inbound Mbit/s.")
    cores = serializers.FloatField(help_text="CPU cores.")
    storage_gb = serializers.FloatField(help_text="Storage for the server's retention period (GB).")
    cameras = serializers.IntegerField()


class UtilisationSerializer(serializers.Serializer):
    mbps = serializers.FloatField(required=False)
    cores = serializers.FloatField(required=False)
    storage_gb = serializers.FloatField(required=False)
    cameras = serializers.FloatField(required=False)


class ScenarioSerializer(serializers.Serializer):
    failed = serializers.ListField(child=serializers.CharField(), help_text="Servers that failed; empty for normal.")
    figures = FiguresSerializer()
    moved = serializers.IntegerField(help_text="Cameras that moved here.")
    utilisation = UtilisationSerializer(help_text="Share of each capacity figure in use; 1.0 is full.")
    over = serializers.ListField(child=serializers.CharField(), help_text="Figures over capacity.")


class CapacitySerializer(serializers.Serializer):
    mbps = serializers.FloatField(allow_null=True)
    cores = serializers.FloatField(allow_null=True)
    storage_gb = serializers.FloatField(allow_null=True)
    cameras = serializers.IntegerField(allow_null=True)


class LicenseUseSerializer(serializers.Serializer):
    active = serializers.BooleanField(source="licensing.active")
    camera_channels_used = serializers.IntegerField(source="camera_channels")
    camera_channels_needed = serializers.IntegerField()
    camera_channels_licensed = serializers.IntegerField(source="licensing.ip_camera_channels")
    analytics_channels_used = serializers.IntegerField(source="analytics_channels")
    analytics_channels_licensed = serializers.IntegerField(source="licensing.analytics_channels")


class WarningSerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=["error", "warning", "info"])
    text = serializers.CharField()


class ServerPlanSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="server.pk")
    name = serializers.CharField(source="server.name")
    system = serializers.CharField(source="server.system.name")
    retention_hours = serializers.FloatField(source="server.retention_hours")
    capacity = CapacitySerializer()
    own_cameras = serializers.IntegerField(help_text="Enabled cameras whose primary server it is.")
    backed_up = serializers.IntegerField()
    backed_up_constant = serializers.IntegerField()
    without_backup = serializers.IntegerField()
    normal = ScenarioSerializer()
    worst = ScenarioSerializer(allow_null=True, help_text="The worst single other-server failure; null if none moves.")
    worst_pair = ScenarioSerializer(allow_null=True, help_text="The worst two failures; only with pairs=true.")
    peak = serializers.FloatField(allow_null=True, help_text="Worst-case share of the tightest capacity figure.")
    licenses = LicenseUseSerializer()
    warnings = WarningSerializer(many=True)


class TightestSerializer(serializers.Serializer):
    server = serializers.CharField()
    resource = serializers.ChoiceField(choices=list(DIMENSIONS), source="dimension")
    load = serializers.FloatField()
    capacity = serializers.FloatField()
    failed = serializers.ListField(child=serializers.CharField(), help_text="The failure; empty with nothing failed.")
    fits = serializers.BooleanField()
    short_now = serializers.ListField(child=serializers.CharField(), help_text="Over capacity with nothing failed.")
    short_after_failure = serializers.ListField(child=serializers.CharField(),
                                                help_text="Within capacity now, over after one failure.")  # fmt: skip
    text = serializers.CharField(help_text="The Capacity page's headline.")


class CapacityPlanSerializer(serializers.Serializer):
    pairs = serializers.BooleanField()
    peak = serializers.FloatField(allow_null=True)
    tightest = serializers.SerializerMethodField(
        help_text="The server and resource tightest in the worst single failure; null without capacity figures."
    )
    servers = ServerPlanSerializer(many=True)

    @extend_schema_field(TightestSerializer(allow_null=True))
    def get_tightest(self, capacity_plan):
        found = tightest(capacity_plan)
        return TightestSerializer(found).data if found else None


class CapacityQuerySerializer(ScopedChoicesMixin, serializers.Serializer):

    system = serializers.PrimaryKeyRelatedField(queryset=MultiserverSystem.objects.all(), required=False)
    pairs = serializers.BooleanField(required=False, default=False)


class EstimateQuerySerializer(serializers.ModelSerializer):
    """A camera's video settings, within the bounds the Capacity page's calculator uses too (capacity.inputs)."""

    analytics = serializers.ListField(
        child=serializers.ChoiceField(choices=AnalyticsModule.choices), required=False, default=list,
        max_length=len(AnalyticsModule), validators=[validate_analytics],
    )  # fmt: skip
    retention_hours = serializers.IntegerField(default=CALCULATOR_BOUNDS["retention_hours"].default,
                                               **_bounds("retention_hours"))  # fmt: skip

    class Meta:
        model = Camera
        fields = ["codec", "width", "height", "fps", "quality", "expected_bitrate_kbps", "analytics",
                  "retention_hours"]  # fmt: skip
        extra_kwargs = {"codec": {"required": True}, "width": {"required": True, **_bounds("width")},
                        "height": {"required": True, **_bounds("height")}, "fps": {"required": True, **_bounds("fps")},
                        "expected_bitrate_kbps": _bounds("expected_bitrate_kbps")}  # fmt: skip


class EstimateSerializer(serializers.Serializer):
    stream_kbps = serializers.FloatField()
    stream_source = serializers.ChoiceField(choices=["measured", "configured", "estimated"])
    estimated_kbps = serializers.FloatField()
    recorded_kbps = serializers.FloatField()
    storage_gb_per_day = serializers.FloatField()
    storage_gb_for_retention = serializers.FloatField()
    ingest_cores = serializers.FloatField(help_text="On any server recording it, primary or backup.")
    analytics_cores = serializers.DictField(child=serializers.FloatField(), help_text="On the primary only.")
    analytics_decode_cores = serializers.FloatField(
        help_text="Decoding every frame for analytics, on the primary only: H.264/H.265 are recorded without decoding."
    )
    cores_on_primary = serializers.FloatField()


class ProposalRequestSerializer(ScopedChoicesMixin, serializers.Serializer):

    scope = serializers.ChoiceField(choices=list(SCOPES.items()), default="unassigned")
    system = serializers.PrimaryKeyRelatedField(queryset=MultiserverSystem.objects.all(), required=False)
    apply = serializers.BooleanField(default=False, help_text="Store the proposal at once, all or nothing.")


class ChangeSerializer(serializers.Serializer):
    camera_id = serializers.IntegerField()
    camera = serializers.CharField()
    primary = serializers.CharField()
    current_backup = serializers.CharField(allow_null=True)
    proposed_backup = serializers.CharField()
    proposed_backup_id = serializers.IntegerField()
    current_mode = serializers.CharField()
    proposed_mode = serializers.CharField()


class UnplacedSerializer(serializers.Serializer):
    camera = serializers.CharField()
    reason = serializers.CharField()


class AssignmentSerializer(serializers.Serializer):
    camera = serializers.IntegerField(source="camera_id")
    backup_server = serializers.IntegerField(source="backup_server_id")


class ProposalSerializer(serializers.Serializer):
    scope = serializers.CharField()
    changes = ChangeSerializer(many=True)
    unplaced = UnplacedSerializer(many=True)
    kept = serializers.IntegerField()
    peak_before = serializers.FloatField(allow_null=True)
    peak_after = serializers.FloatField(allow_null=True)
    assignments = AssignmentSerializer(many=True, help_text="The body for POST /api/cameras/assign-backup/.")
    applied = serializers.BooleanField()
