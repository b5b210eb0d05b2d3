from django.urls import path

from cameras import bulk_views

# General settings (under servers/settings/): the bulk Cameras tab.
app_name = "general-settings"
urlpatterns = [
    path("cameras/", bulk_views.general_settings_cameras, name="cameras"),
]
