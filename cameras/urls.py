app_name = "cameras"
urlpatterns = []
