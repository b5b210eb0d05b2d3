"""Rate limits of the API, beside the login's (django-axes).

Rates are read from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` at each request, so a site
(or a test) can change them without a restart of the class machinery. Counts live in the
default cache (Redis), shared by every web process.
"""

from django.core.cache import cache
from rest_framework import throttling
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.settings import api_settings


class _SettingsRates:
    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class UserRateThrottle(_SettingsRates, throttling.UserRateThrottle):
    """Every signed-in user (or token): a generous rate for scripts, a wall for a runaway loop."""


class AnonRateThrottle(_SettingsRates, throttling.AnonRateThrottle):
    """Requests without a user: the schema, the docs and refusals."""


class ScopedRateThrottle(_SettingsRates, throttling.ScopedRateThrottle):
    """Tighter limits for the expensive endpoints that name a ``throttle_scope``."""

    def allow_request(self, request, view):
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return throttling.SimpleRateThrottle.allow_request(self, request, view)


class ThrottledTokenAuthentication(TokenAuthentication):
    """Token authentication that stops guessing: after ``failed-token`` wrong tokens from one
    address within its period, that address gets 429 instead of 401 until the period ends."""

    scope = "failed-token"

    def authenticate_credentials(self, key):
        guard = AnonRateThrottle()  # the client's address, as DRF's throttles see it
        guard.scope = self.scope
        ident = guard.get_ident(self._request)
        cache_key = f"throttle_{self.scope}_{ident}"
        num_requests, duration = guard.parse_rate(guard.get_rate())
        if num_requests is not None and cache.get(cache_key, 0) >= num_requests:
            raise Throttled(wait=duration, detail="Too many wrong API tokens from this address; try again later.")
        try:
            return super().authenticate_credentials(key)
        except AuthenticationFailed:
            if num_requests is not None and not cache.add(cache_key, 1, duration):
                try:
                    cache.incr(cache_key)
                except ValueError:  # expired a moment ago: this failure starts a new period
                    cache.add(cache_key, 1, duration)
            raise

    def authenticate(self, request):
        self._request = request
        return super().authenticate(request)
