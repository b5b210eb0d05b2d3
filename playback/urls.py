app_name = "playback"
urlpatterns: list = []
