from django.urls import path

from redundancy.api.readiness import BackupCheckListView, BackupCheckRequestView

urlpatterns = [
    path("cameras/<int:pk>/backup-check/", BackupCheckRequestView.as_view(), name="camera-backup-check"),
    path("backup-checks/", BackupCheckListView.as_view(), name="backup-checks"),
]
