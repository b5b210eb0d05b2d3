from django import forms
from django.utils.text import capfirst

from accounts.scope import ScopedUniqueFormMixin
from servers.models import License, MailSettings, MultiserverSystem, RedundancySettings, Server


class RedundancySettingsForm(forms.ModelForm):
    """A server's Backup (redundancy) section, applied whole or not at all.

    Rule 5: turning email notifications on needs working mail settings. Without them nothing of
    the change is stored, every changed part says why, and the mail setup carries the change on
    (``pending()``) so that saving the mail settings applies it whole.
    """

    class Meta:
        model = RedundancySettings
        fields = ["email_notifications", "constant_redundancy", "fast_redundancy"]

    def __init__(self, *args, read_only=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.stored = {name: getattr(self.instance, name) for name in self.Meta.fields}
        self.ticked = dict(self.stored)  # the boxes as ticked, once the form is cleaned
        self.needs_mail_setup = False
        for field in self.fields.values():
            field.disabled = read_only

    def clean(self):
        cleaned = super().clean()
        self.ticked = {name: bool(cleaned.get(name, self.stored[name])) for name in self.Meta.fields}
        changed = self.changed_parts()
        if "email_notifications" in changed and self.ticked["email_notifications"] and not self.mail_works():
            self.needs_mail_setup = True
            self.add_error("email_notifications", f"Needs working mail settings for {self.instance.server.system}: "
                                                  "nothing is stored until they are saved, and saving them applies "
                                                  "this whole change.")  # fmt: skip
            for name in [other for other in changed if other != "email_notifications"]:
                self.add_error(name, "Not stored: Apply stores the whole change or none of it, so this part waits "
                                     "for the mail settings with email notifications.")  # fmt: skip
        return cleaned

    def mail_works(self) -> bool:
        mail = MailSettings.objects.filter(system_id=self.instance.server.system_id).first()
        return bool(mail and mail.is_configured)

    def changed_parts(self) -> list[str]:
        return [name for name in self.Meta.fields if self.ticked[name] != self.stored[name]]

    def label(self, name: str) -> str:
        return capfirst(self.fields[name].label)

    def applied(self) -> list[str]:
        """One line per part that changes: what Apply stored."""
        return [f"{self.label(name)}: turned {'on' if self.ticked[name] else 'off'}." for name in self.changed_parts()]

    def change_summary(self) -> str:
        """What Apply would do, in a line, for the preview."""
        turned = {True: [], False: []}
        for name in self.changed_parts():
            turned[self.ticked[name]].append(self.fields[name].label.lower())
        parts = [f"Apply turns {word}: {', '.join(turned[on])}." for word, on in (("on", True), ("off", False))
                 if turned[on]]  # fmt: skip
        return " ".join(parts) or "Apply changes nothing: the boxes are ticked as stored."

    def pending(self) -> dict[str, str]:
        """The other changed parts, for the mail setup to apply with email notifications."""
        return {name: "on" if self.ticked[name] else "off" for name in self.changed_parts()
                if name != "email_notifications"}  # fmt: skip

    def pending_words(self) -> list[str]:
        return [f"{self.fields[name].label.lower()} turns {value}" for name, value in self.pending().items()]


def pending_settings(params, server) -> RedundancySettingsForm:
    """The Backup (redundancy) change a mail setup carries: email notifications on, plus ``pending()``."""
    settings = RedundancySettings.objects.get(server=server)
    ticked = {name: getattr(settings, name) for name in RedundancySettingsForm.Meta.fields}
    ticked["email_notifications"] = True
    for name in ("constant_redundancy", "fast_redundancy"):
        if params.get(name) in ("on", "off"):
            ticked[name] = params[name] == "on"
    return RedundancySettingsForm({name: "on" for name, on in ticked.items() if on}, instance=settings)


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
        """An empty field keeps the stored password, but only for the server and user it was given for."""
        typed, stored = self.cleaned_data["password"], self.instance.password
        if typed or not stored:
            return typed
        moved = [label for name, label in (("smtp_host", "SMTP host"), ("smtp_port", "SMTP port"),
                                           ("username", "user name"))
                 if name in self.cleaned_data and self.cleaned_data[name] != getattr(self.instance, name)]  # fmt: skip
        if moved:
            raise forms.ValidationError(f"Type the password again: the {' and '.join(moved)} changed, and the stored "
                                        "password goes only to the server it was given for.")  # fmt: skip
        return stored

    def clean(self):
        cleaned = super().clean()
        if not self.errors and not MailSettings(**{**cleaned, "system": self.instance.system}).is_configured:
            raise forms.ValidationError(
                "Notifications need at least one recipient and an SMTP host "
                "(or the site's own mail, which the site's administrator sets up for every system)."
            )
        return cleaned


class LicenseForm(ScopedUniqueFormMixin, forms.ModelForm):
    class Meta:
        model = License
        fields = ["key", "server", "ip_camera_channels", "analytics_channels", "valid_from", "valid_until"]
        widgets = {
            "valid_from": forms.DateInput(attrs={"type": "date"}),
            "valid_until": forms.DateInput(attrs={"type": "date"}),
        }

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if user is not None:
            self.fields["server"].queryset = self.fields["server"].queryset.restrict(user)


class SystemForm(ScopedUniqueFormMixin, forms.ModelForm):
    class Meta:
        model = MultiserverSystem
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user


class ServerForm(ScopedUniqueFormMixin, forms.ModelForm):
    """A video server's own settings, as the API takes them; its Backup (redundancy) section and its
    licenses have their own forms. The model's clean() keeps rule 1 when it changes system."""

    class Meta:
        model = Server
        fields = ["system", "name", "address", "api_port", "max_inbound_mbps", "cpu_budget_cores", "storage_gb",
                  "max_cameras", "retention_hours", "merge_back"]  # fmt: skip

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if user is not None:  # only the user's systems can be chosen
            self.fields["system"].queryset = self.fields["system"].queryset.restrict(user)
        if self.instance.pk:
            self.fields["name"].help_text = (
                "The name its agent runs under (run_video_server --server NAME): rename both together, or the "
                "server is heard no more and its cameras fail over.")
