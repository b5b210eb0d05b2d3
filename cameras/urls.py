from django.urls import path

from cameras import import_views, views

app_name = "cameras"
urlpatterns = [
    path("", views.camera_list, name="list"),
    path("new/", views.camera_new, name="new"),
    path("import/", import_views.camera_import, name="import"),
    path("import/create/", import_views.camera_import_create, name="import-create"),
    path("import/template.csv", import_views.camera_import_template, name="import-template"),
    path("backup-options/", views.backup_options, name="backup-options-new"),
    path("<int:pk>/", views.camera_tab, {"tab": "connection"}, name="connection"),
    path("<int:pk>/general/", views.camera_tab, {"tab": "general"}, name="general"),
    path("<int:pk>/backup-options/", views.backup_options, name="backup-options"),
    path("<int:pk>/delete/", views.camera_delete, name="delete"),
    path("<int:pk>/test-connection/", views.camera_test_connection, name="test-connection"),
]
