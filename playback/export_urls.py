from django.urls import path

from playback import export_views

app_name = "exports"
urlpatterns = [
    path("cameras/<int:pk>/export/", export_views.export_camera, name="create"),
    path("exports/<int:pk>/", export_views.export_progress, name="progress"),
]
