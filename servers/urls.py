from django.urls import path

from servers import information_views, views

app_name = "servers"
urlpatterns = [
    path("", views.server_list, name="list"),
    path("<int:pk>/", information_views.server_information, name="server"),
    path("<int:pk>/backup-settings/", information_views.backup_settings, name="backup-settings"),
    path("licenses/", views.license_list, name="licenses"),
    path("licenses/<int:pk>/delete/", views.license_delete, name="license-delete"),
    path("systems/<int:system_id>/mail/", views.mail_settings, name="mail-settings"),
]
