"""``{{ seconds|duration }}``: seconds as h:mm:ss, as the report's table and CSV show them."""

from django import template

from reports import figures

register = template.Library()


@register.filter
def duration(seconds) -> str:
    return figures.duration(float(seconds or 0))
