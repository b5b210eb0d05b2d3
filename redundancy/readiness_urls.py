from django.urls import path

from redundancy import readiness_views

app_name = "readiness"
urlpatterns = [
    path("backup-checks/", readiness_views.backup_checks, name="report"),
    path("cameras/<int:pk>/backup-check/", readiness_views.backup_check, name="camera"),
]
