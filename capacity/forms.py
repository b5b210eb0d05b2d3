from django import forms

from cameras.models import AnalyticsModule, Camera
from capacity.inputs import CALCULATOR_BOUNDS
from capacity.proposal import SCOPES
from servers.models import CAPACITY_FIGURES, MultiserverSystem, Server, capacity_messages


def _bounded(name: str, **kwargs) -> forms.IntegerField:
    bound = CALCULATOR_BOUNDS[name]
    return forms.IntegerField(label=bound.label, min_value=bound.smallest, max_value=bound.largest,
                              error_messages=bound.messages(), **kwargs)  # fmt: skip


class CalculatorForm(forms.ModelForm):
    """A camera's video settings, within the bounds the estimate API uses too (capacity.inputs)."""

    width = _bounded("width")
    height = _bounded("height")
    fps = _bounded("fps")
    expected_bitrate_kbps = _bounded("expected_bitrate_kbps", required=False, help_text="Leave empty to estimate it.")
    analytics = forms.MultipleChoiceField(
        choices=AnalyticsModule.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    retention_hours = _bounded("retention_hours", initial=CALCULATOR_BOUNDS["retention_hours"].default)

    class Meta:
        model = Camera
        fields = ["codec", "width", "height", "fps", "quality", "expected_bitrate_kbps", "analytics"]
        help_texts = {"quality": ""}


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
            self.fields["system"].queryset = self.fields["system"].queryset.restrict(user)
