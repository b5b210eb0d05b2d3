from django import forms

from accounts.scope import limit
from cameras.models import AnalyticsModule, Camera
from capacity.proposal import SCOPES
from servers.models import CAPACITY_FIGURES, MultiserverSystem, Server, capacity_messages

RETENTION_FIELD = Server._meta.get_field("retention_hours")


class CalculatorForm(forms.ModelForm):
    """A camera's video settings, validated by the Camera model's own limits."""

    analytics = forms.MultipleChoiceField(
        choices=AnalyticsModule.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    retention_hours = RETENTION_FIELD.formfield(initial=72)

    class Meta:
        model = Camera
        fields = ["codec", "width", "height", "fps", "quality", "expected_bitrate_kbps", "analytics"]
        labels = {"expected_bitrate_kbps": "known bitrate (kbit/s)"}
        help_texts = {"expected_bitrate_kbps": "Leave empty to estimate it.", "quality": ""}


class CapacityFiguresForm(forms.ModelForm):
    class Meta:
        model = Server
        fields = ["max_inbound_mbps", "cpu_budget_cores", "storage_gb", "max_cameras", "retention_hours"]

    def __init__(self, *args, read_only=False, **kwargs):
        super().__init__(*args, **kwargs)
        for name in CAPACITY_FIGURES:
            # One message per figure, whether the form field's own bound or the model's catches it.
            self.fields[name].error_messages.update(capacity_messages(name))
        for field in self.fields.values():
            field.disabled = read_only


class ProposalForm(forms.Form):
    scope = forms.ChoiceField(choices=list(SCOPES.items()), initial="unassigned", widget=forms.RadioSelect)
    system = forms.ModelChoiceField(MultiserverSystem.objects.all(), required=False, empty_label="All systems")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:
            self.fields["system"].queryset = limit(self.fields["system"].queryset, user, "pk")
