from django.urls import path

from playback import views

app_name = "playback"
urlpatterns = [
    path("cameras/<int:pk>/playback.m3u8", views.playlist, name="playlist"),
    # The camera's id as camera_id, the segment's as pk: the last part of the address names the object.
    path("cameras/<int:camera_id>/recordings/<int:pk>.ts", views.fragment, name="fragment"),
]
