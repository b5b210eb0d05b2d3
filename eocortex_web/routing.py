# Websocket routes of every app; the live status page (redundancy) adds its consumer here.
websocket_urlpatterns = []
