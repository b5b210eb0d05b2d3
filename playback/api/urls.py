from django.urls import path

from playback.api.views import RecordingsView

urlpatterns = [
    path("cameras/<int:pk>/recordings/", RecordingsView.as_view(), name="camera-recordings"),
]
