from django.urls import path

from capacity import views

app_name = "capacity"
urlpatterns = [
    path("", views.capacity_page, name="page"),
    path("calculator/", views.calculator, name="calculator"),
    path("proposal/", views.proposal, name="proposal"),
    path("proposal/apply/", views.apply_proposal, name="apply"),
    path("servers/<int:pk>/", views.server_capacity, name="server"),
]
