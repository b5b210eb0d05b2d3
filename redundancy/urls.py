from django.urls import path

from redundancy import live_views, views

app_name = "redundancy"
urlpatterns = [
    path("servers/<int:pk>/drain/", views.server_action, {"action": "drain"}, name="drain"),
    path("servers/<int:pk>/fail-back/", views.server_action, {"action": "fail-back"}, name="fail-back"),
    path("events/", views.event_list, name="events"),
    path("events/<int:pk>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("live/", live_views.live_page, name="live"),
    path("live/snapshot/<int:camera_id>.jpg", live_views.snapshot, name="snapshot"),
    path("cameras/<int:pk>/timeline/", live_views.camera_timeline, name="timeline"),
]
