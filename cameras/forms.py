
from django import forms
from django.utils import timezone

from accounts.scope import ScopedUniqueFormMixin
from cameras.models import (
    CREDENTIAL_ADDRESSES,
    AnalyticsModule,
    Camera,
    RtspTransport,
    credentials_moved,
    take_credentials,
    without_credential_parameters,
)
from cameras.rules import valid_backups
from servers.models import Server

CONNECTION_FIELDS = [
    "stream_url",
    "sub_stream_url",
    "onvif_url",
    "username",
    "password",
    "clear_credentials",
    "codec",
    "rtsp_transport",
    "width",
    "height",
    "fps",
    "quality",
    "expected_bitrate_kbps",
    "primary_server",
    "backup_server",
]
TEST_FIELDS = ["stream_url", "username", "password", "clear_credentials", "codec", "rtsp_transport", "width", "height",
               "fps"]  # fmt: skip  # what Test connection opens, and what it compares the measured figures with
OTHER_URL_FIELDS = ("sub_stream_url", "onvif_url")  # addresses of the camera besides its stream URL
GENERAL_FIELDS = ["name", "enabled", "failover_priority", "analytics"]


class WriteOnlyTextInput(forms.TextInput):
    """A text box that never shows a value: what is typed goes in, nothing comes back out."""

    def format_value(self, value):
        return None


class CameraForm(ScopedUniqueFormMixin, forms.ModelForm):
    """All of a camera's settings; the tabs use subsets through ``tab_fields``."""

    # Credentials are write-only: never rendered back, an empty field keeps what is stored.
    username = forms.CharField(
        required=False,
        max_length=128,
        widget=WriteOnlyTextInput(attrs={"autocomplete": "off"}),
        help_text="Leave empty to keep the stored user name.",
    )
    password = forms.CharField(
        required=False,
        max_length=128,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored password.",
    )
    clear_credentials = forms.BooleanField(required=False, label="Clear the stored user name and password")
    analytics = forms.MultipleChoiceField(
        choices=AnalyticsModule.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Run on the primary server only, never on the backup.",
    )

    class Meta:
        model = Camera
        fields = GENERAL_FIELDS + CONNECTION_FIELDS

    tells_unstored = True  # a refused form says that the credentials typed were not stored

    def __init__(self, *args, tab_fields=None, backup_options_url=None, read_only=False, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if user is not None:  # only servers of the user's systems can be chosen
            for name in ("primary_server", "backup_server"):
                self.fields[name].queryset = self.fields[name].queryset.restrict(user)
        self.initial.pop("username", None)
        if "rtsp_transport" in self.fields:
            self.fields["rtsp_transport"].required = False
        if tab_fields is not None:
            for name in list(self.fields):
                if name not in tab_fields:
                    del self.fields[name]
        if not self.instance.pk:
            self.fields.pop("clear_credentials", None)
            for name in ("username", "password"):
                if name in self.fields:
                    self.fields[name].help_text = ""
        if "backup_server" in self.fields:
            self._offer_valid_backups()
        if backup_options_url and "primary_server" in self.fields:
            # Only the two server fields travel: never the credentials typed into the same form.
            self.fields["primary_server"].widget.attrs.update(
                {"hx-get": backup_options_url, "hx-trigger": "change", "hx-target": "#backup-select",
                 "hx-select": "#backup-select", "hx-swap": "outerHTML", "hx-include": "#id_backup_server"}
            )  # fmt: skip
        for field in self.fields.values():
            field.disabled = field.disabled or read_only

    def full_clean(self):
        self._url_credentials = self._take_url_credentials()
        carried = self._blank_other_url_credentials()
        super().full_clean()
        for name in carried:
            self.add_error(name, "This address carried a user name or password: they were taken out and not "
                                 "stored. The camera's user name and password fields serve all its "
                                 "addresses.")  # fmt: skip
        if self.errors and self.tells_unstored:
            # Typed credentials are never sent back to the browser: say so rather than drop them silently.
            for name, what in (("username", "user name"), ("password", "password")):
                if name in self.fields and self.data.get(self.add_prefix(name)):
                    self.add_error(name, f"The {what} you typed was not stored; type it again.")
            if any(self._url_credentials) and "stream_url" in self.fields:
                self.add_error("stream_url", "The user name and password were taken out of the stream URL but not "
                                             "stored, as the form was refused: type them in their fields.")  # fmt: skip

    def _take_url_credentials(self) -> tuple[str, str]:
        """Credentials pasted into the stream URL leave it before anything is validated or rendered back."""
        name = self.add_prefix("stream_url")
        if not self.is_bound or "stream_url" not in self.fields or name not in self.data:
            return "", ""
        url, username, password = take_credentials(self.data[name])
        # Credentials in its parameters are refused (the validator says so); never shown back either.
        url = without_credential_parameters(url)
        if url != self.data[name]:
            self.data = self.data.copy()
            self.data[name] = url
        return username, password

    def _blank_other_url_credentials(self) -> list[str]:
        """The sub stream and ONVIF addresses never carry credentials, nor show typed ones back: the fields
        whose address did are refused, with the credentials taken out of what the form shows."""
        carried = []
        for field in OTHER_URL_FIELDS:
            name = self.add_prefix(field)
            if not self.is_bound or field not in self.fields or not isinstance(self.data.get(name), str):
                continue
            url = without_credential_parameters(take_credentials(self.data[name])[0])
            if url != self.data[name]:
                self.data = self.data.copy()
                self.data[name] = url
                carried.append(field)
        return carried

    def _offer_valid_backups(self):
        """The drop-down offers only servers that keep the rules; any submitted one is still checked by clean()."""
        # The primary field's servers: only the user's systems when the form has a user.
        choosable = self.fields["primary_server"].queryset if "primary_server" in self.fields else Server.objects
        servers = list(choosable.select_related("system").prefetch_related("licenses"))
        primary = self.instance.primary_server if self.instance.primary_server_id else None
        submitted = self.data.get(self.add_prefix("primary_server")) if self.is_bound else None
        if submitted and str(submitted).isdigit():
            primary = next((s for s in servers if s.pk == int(submitted)), primary)
        field = self.fields["backup_server"]
        choices = [("", "— none —")]
        if primary is not None:
            candidates = [s for s in servers if s.system_id == primary.system_id]
            name = self.instance.name or "this camera"
            choices += [(s.pk, s.name) for s in valid_backups(name, primary, candidates, timezone.localdate())]
            current = self.instance.backup_server_id
            if current and current not in {pk for pk, _ in choices}:
                choices.append((current, f"{self.instance.backup_server.name} (not valid now)"))
        field.widget.choices = choices
        field.help_text = "Only servers of the primary's multiserver system with active licenses are offered."

    def clean_rtsp_transport(self):
        # Left out of a submission (a script posting the form, an HTTP camera's page): the camera's, or TCP.
        return self.cleaned_data.get("rtsp_transport") or self.instance.rtsp_transport or RtspTransport.TCP

    def clean_username(self):
        return self._credential("username", 0)

    def clean_password(self):
        return self._credential("password", 1)

    def _credential(self, name: str, index: int) -> str:
        """What was typed, else what the stream URL carried, else what is stored."""
        typed, from_url = self.cleaned_data[name], self._url_credentials[index]
        if typed and from_url and typed != from_url:
            raise forms.ValidationError(f"The stream URL carries another {name.replace('name', ' name')}.")
        stored = getattr(self.instance, name) if self.instance.pk else ""
        return typed or from_url or stored

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_credentials"):
            cleaned["username"] = ""
            cleaned["password"] = ""
            self.instance.username = ""
            self.instance.password = ""
            return cleaned
        self._keep_stored_credentials_to_their_camera(cleaned)
        return cleaned

    def _keep_stored_credentials_to_their_camera(self, cleaned):
        """The stored user name and password go only to the camera they were given for: an address the agents
        send them to, moved elsewhere (``credentials_moved``), asks for them again (as the mail settings do)."""
        urls = {field: cleaned.get(field) for field in CREDENTIAL_ADDRESSES if field in self.fields}
        moved = credentials_moved(self.instance, urls)
        if not moved:
            return
        for index, name in enumerate(("username", "password")):
            typed = self.data.get(self.add_prefix(name)) or self._url_credentials[index]
            if getattr(self.instance, name) and not typed:
                what = name.replace("name", " name")
                self.add_error(name, f"Type the {what} again: {CREDENTIAL_ADDRESSES[moved[0]]} changed, and the "
                                     f"stored {what} goes only to the camera it was given for.")  # fmt: skip


class ConnectionTestForm(CameraForm):
    """The Connection tab's stream settings as typed, for Test connection: checked as Apply checks them (the
    stored credentials among it: only to the camera they were given for), stored nowhere."""

    tells_unstored = False  # nothing is stored by a test, and the page keeps what was typed

    def __init__(self, *args, **kwargs):
        super().__init__(*args, tab_fields=TEST_FIELDS, **kwargs)

