from django.db import transaction
from rest_framework import serializers

from accounts.scope import ScopedChoicesMixin
from servers.models import CAPACITY_FIGURES, License, MultiserverSystem, RedundancySettings, Server, capacity_messages
from utilities.serializers import model_clean


class MultiserverSystemSerializer(ScopedChoicesMixin, serializers.ModelSerializer):
    class Meta:
        model = MultiserverSystem
        fields = ["id", "name", "description"]


class RedundancySettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = RedundancySettings
        fields = ["email_notifications", "constant_redundancy", "fast_redundancy"]


class LicenseSerializer(ScopedChoicesMixin, serializers.ModelSerializer):

    is_active = serializers.SerializerMethodField()

    class Meta:
        model = License
        fields = [
            "id",
            "key",
            "server",
            "ip_camera_channels",
            "analytics_channels",
            "valid_from",
            "valid_until",
            "is_active",
        ]

    def get_is_active(self, obj) -> bool:
        return obj.is_active()

    def validate(self, attrs):
        return model_clean(self.instance, License, attrs)


class ServerSerializer(ScopedChoicesMixin, serializers.ModelSerializer):

    redundancy = RedundancySettingsSerializer(required=False)

    class Meta:
        model = Server
        fields = [
            "id",
            "name",
            "system",
            "address",
            "api_port",
            "max_inbound_mbps",
            "cpu_budget_cores",
            "storage_gb",
            "max_cameras",
            "retention_hours",
            "merge_back",
            "redundancy",
        ]
        # DRF turns the model's limits into its own min/max checks: keep the model's clear messages.
        extra_kwargs = {field: {"error_messages": capacity_messages(field)} for field in CAPACITY_FIGURES}

    def validate(self, attrs):
        fields = {k: v for k, v in attrs.items() if k != "redundancy"}
        model_clean(self.instance, Server, fields)
        return attrs

    def create(self, validated_data):
        redundancy = validated_data.pop("redundancy", None)
        with transaction.atomic():
            server = super().create(validated_data)
            if redundancy:
                settings = RedundancySettings.objects.get(server=server)
                for name, value in redundancy.items():
                    setattr(settings, name, value)
                settings.save()  # saved, not updated: the audit log sees it
                server.refresh_from_db()
        return server

    def update(self, instance, validated_data):
        redundancy = validated_data.pop("redundancy", None)
        with transaction.atomic():
            server = super().update(instance, validated_data)
            if redundancy:
                for name, value in redundancy.items():
                    setattr(server.redundancy, name, value)
                server.redundancy.save()
        return server
