from django.urls import path

from playback.api.views import ExportDownloadView, ExportManifestView, ExportsView, ExportView, RecordingsView

urlpatterns = [
    path("cameras/<int:pk>/recordings/", RecordingsView.as_view(), name="camera-recordings"),
    path("cameras/<int:pk>/exports/", ExportsView.as_view(), name="camera-exports"),
    path("cameras/<int:pk>/exports/<int:export>/", ExportView.as_view(), name="camera-export"),
    path(
        "cameras/<int:pk>/exports/<int:export>/download/", ExportDownloadView.as_view(), name="camera-export-download"
    ),
    path(
        "cameras/<int:pk>/exports/<int:export>/manifest/", ExportManifestView.as_view(), name="camera-export-manifest"
    ),
]
