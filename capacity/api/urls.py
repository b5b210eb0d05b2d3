from django.urls import path

from capacity.api.views import CapacityView, EstimateView, ProposalView

urlpatterns = [
    path("capacity/", CapacityView.as_view(), name="capacity"),
    path("capacity/estimate/", EstimateView.as_view(), name="capacity-estimate"),
    path("capacity/proposal/", ProposalView.as_view(), name="capacity-proposal"),
]
