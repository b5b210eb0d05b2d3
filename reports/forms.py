"""A report's period, typed in the browser's local time as on the Events page."""

from datetime import timedelta

from django import forms

from redundancy.views import EventRange

LONGEST = timedelta(days=366)
DEFAULT = timedelta(days=7)  # a period without a start: the week up to its end


class ReportPeriod(EventRange):
    """Since (inclusive) and until (exclusive), read as the Events page reads its range; either may be left
    out (until: now; since: a week before until). At most ``LONGEST``; a period that ends after ``now`` is
    reported up to now: nothing is recorded or lost in the future."""

    def __init__(self, data, zone: str = "", now=None):
        self.now = now
        super().__init__(data, zone)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        until = min(cleaned.get("until") or self.now, self.now)
        since = cleaned.get("since") or until - DEFAULT
        if since >= self.now:
            raise forms.ValidationError("Since is in the future: nothing has been recorded there yet.")
        if until - since > LONGEST:
            raise forms.ValidationError(f"A report covers at most {LONGEST.days} days: choose a shorter period.")
        cleaned["since"], cleaned["until"] = since, until
        return cleaned
