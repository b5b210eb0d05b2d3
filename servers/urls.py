from django.urls import path

from servers import edit_views, information_views, views

app_name = "servers"
urlpatterns = [
    path("", views.server_list, name="list"),
    path("new/", edit_views.server_new, name="server-new"),
    path("<int:pk>/", information_views.server_information, name="server"),
    path("<int:pk>/edit/", edit_views.server_edit, name="server-edit"),
    path("<int:pk>/delete/", edit_views.server_delete, name="server-delete"),
    path("systems/new/", edit_views.system_new, name="system-new"),
    path("systems/<int:pk>/", edit_views.system_edit, name="system-edit"),
    path("systems/<int:pk>/delete/", edit_views.system_delete, name="system-delete"),
    path("<int:pk>/backup-settings/", information_views.backup_settings, name="backup-settings"),
    path("licenses/", views.license_list, name="licenses"),
    path("licenses/<int:pk>/delete/", views.license_delete, name="license-delete"),
    path("systems/<int:system_id>/mail/", views.mail_settings, name="mail-settings"),
]
