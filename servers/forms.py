from django import forms

from accounts.scope import limit
from servers.models import License, MailSettings, RedundancySettings


class RedundancySettingsForm(forms.ModelForm):
    class Meta:
        model = RedundancySettings
        fields = ["email_notifications", "constant_redundancy", "fast_redundancy"]

    def __init__(self, *args, read_only=False, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.disabled = read_only


class MailSettingsForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        max_length=128,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the stored password.",
    )

    class Meta:
        model = MailSettings
        fields = ["smtp_host", "smtp_port", "use_tls", "username", "password", "from_email", "recipients"]
        widgets = {"recipients": forms.Textarea(attrs={"rows": 3})}

    def clean_password(self):
        return self.cleaned_data["password"] or self.instance.password

    def clean(self):
        cleaned = super().clean()
        if not self.errors and not MailSettings(**{**cleaned, "system": self.instance.system}).is_configured:
            raise forms.ValidationError(
                "Notifications need at least one recipient and an SMTP host "
                "(or mail configured for the whole site through EMAIL_URL)."
            )
        return cleaned


class LicenseForm(forms.ModelForm):
    class Meta:
        model = License
        fields = ["key", "server", "ip_camera_channels", "analytics_channels", "valid_from", "valid_until"]
        widgets = {
            "valid_from": forms.DateInput(attrs={"type": "date"}),
            "valid_until": forms.DateInput(attrs={"type": "date"}),
        }

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:
            self.fields["server"].queryset = limit(self.fields["server"].queryset, user, "system")
