app_name = "redundancy"
urlpatterns = []
