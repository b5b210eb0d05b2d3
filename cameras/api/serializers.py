from collections.abc import Mapping

from rest_framework import serializers

from accounts.scope import ScopedChoicesMixin
from cameras.models import CREDENTIAL_ADDRESSES, AnalyticsModule, Camera, credentials_moved, take_credentials
from cameras.modes import RedundancyMode
from utilities.ids import LARGEST_ID
from utilities.serializers import model_clean

MAX_ASSIGNMENTS = 10_000


class CameraSerializer(ScopedChoicesMixin, serializers.ModelSerializer):

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
            "sub_stream_url",
            "onvif_url",
            "codec",
            "rtsp_transport",
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

    def to_internal_value(self, data):
        # Credentials pasted into the stream URL leave it before it is validated: into their fields.
        self._url_credentials = {}
        if isinstance(data, Mapping) and isinstance(data.get("stream_url"), str):
            url, username, password = take_credentials(data["stream_url"])
            if username or password:
                data = {**data, "stream_url": url}
                self._url_credentials = {"username": username, "password": password}
        return super().to_internal_value(data)

    def validate(self, attrs):
        clashes = {}
        for name, value in getattr(self, "_url_credentials", {}).items():
            if value and attrs.get(name) and attrs[name] != value:
                clashes[name] = [f"The stream URL carries another {name.replace('name', ' name')}."]
            elif value:
                attrs[name] = value
        stored = self.instance
        moved = credentials_moved(stored, {field: attrs[field] for field in CREDENTIAL_ADDRESSES if field in attrs}
                                  ) if stored is not None else []  # fmt: skip
        if moved:
            # The stored credentials go only to the camera they were given for: sent again, or cleared ("").
            for name in ("username", "password"):
                if getattr(stored, name) and name not in attrs:
                    what = name.replace("name", " name")
                    clashes[name] = [f"Send the {what} again: {CREDENTIAL_ADDRESSES[moved[0]]} changed, and the "
                                     f"stored {what} goes only to the camera it was given for."]  # fmt: skip
        if clashes:
            raise serializers.ValidationError(clashes)
        return model_clean(self.instance, Camera, attrs)


class BackupAssignmentSerializer(serializers.Serializer):
    camera = serializers.IntegerField(min_value=1, max_value=LARGEST_ID)
    backup_server = serializers.IntegerField(min_value=1, max_value=LARGEST_ID, allow_null=True)


class BackupAssignmentsSerializer(serializers.Serializer):
    assignments = BackupAssignmentSerializer(many=True, allow_empty=False, max_length=MAX_ASSIGNMENTS)
