from rest_framework import serializers

from accounts.scope import ScopedChoicesMixin
from cameras.models import AnalyticsModule, Camera
from cameras.modes import RedundancyMode
from eocortex_web.serializers import model_clean

MAX_ASSIGNMENTS = 10_000


class CameraSerializer(ScopedChoicesMixin, serializers.ModelSerializer):
    scoped_choices = {"primary_server": "system", "backup_server": "system"}

    analytics = serializers.ListField(
        child=serializers.ChoiceField(choices=AnalyticsModule.choices), required=False, max_length=len(AnalyticsModule)
    )
    redundancy_mode = serializers.ChoiceField(choices=RedundancyMode.choices, read_only=True)
    redundancy_warnings = serializers.ListField(child=serializers.CharField(), read_only=True)
    has_credentials = serializers.BooleanField(read_only=True)
    username = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=128)
    password = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=128, style={"input_type": "password"}
    )

    class Meta:
        model = Camera
        fields = [
            "id",
            "name",
            "stream_url",
            "codec",
            "width",
            "height",
            "fps",
            "quality",
            "expected_bitrate_kbps",
            "primary_server",
            "backup_server",
            "redundancy_mode",
            "redundancy_warnings",
            "failover_priority",
            "analytics",
            "enabled",
            "has_credentials",
            "username",
            "password",
        ]

    def validate(self, attrs):
        return model_clean(self.instance, Camera, attrs)


class BackupAssignmentSerializer(serializers.Serializer):
    camera = serializers.IntegerField(min_value=1)
    backup_server = serializers.IntegerField(min_value=1, allow_null=True)


class BackupAssignmentsSerializer(serializers.Serializer):
    assignments = BackupAssignmentSerializer(many=True, allow_empty=False, max_length=MAX_ASSIGNMENTS)
