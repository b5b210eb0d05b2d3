"""``{{ value|moment }}``: a moment for the page, in the browser's local time once forms.js has run,
with UTC in its tooltip; without script it reads in UTC and says so."""

from datetime import UTC

from django import template
from django.utils.html import format_html

register = template.Library()

STYLES = {"datetime": "%Y-%m-%d %H:%M:%S", "minute": "%Y-%m-%d %H:%M", "time": "%H:%M:%S"}


@register.filter
def moment(value, style: str = "datetime"):
    if not value:
        return ""
    at = value.astimezone(UTC)
    return format_html(
        '<time datetime="{}" data-local="{}" title="UTC {}">{} UTC</time>',
        at.isoformat(timespec="milliseconds").replace("+00:00", "Z"), style, at.strftime(STYLES["datetime"]),
        at.strftime(STYLES[style]),
    )
