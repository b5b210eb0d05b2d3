from django.urls import path

from redundancy import views

app_name = "redundancy"
urlpatterns = [
    path("servers/<int:pk>/", views.server_information, name="server"),
    path("servers/<int:pk>/backup-settings/", views.backup_settings, name="backup-settings"),
    path("servers/settings/cameras/", views.general_settings_cameras, name="general-cameras"),
]
