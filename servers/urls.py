app_name = "servers"
urlpatterns = []
