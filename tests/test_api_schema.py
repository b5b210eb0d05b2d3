"""Schemathesis against the live API (the real WSGI application, authenticated with a token):
every operation, generated requests, no server error and no response outside the schema."""

import json

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

# The schema the site serves at /api/schema/ (which itself needs a login), built the same way.
RAW = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), cls=DjangoJSONEncoder))
schema = schemathesis.openapi.from_dict(RAW)
schema.app = get_wsgi_application()


@pytest.fixture
def token(site, make_camera):
    for n in range(3):
        make_camera(site["a"], site["b"], f"fuzz-{n}", codec="mjpeg", expected_bitrate_kbps=1000)
    user = User.objects.create_superuser("fuzzer", "fuzzer@example.com", "a-long-test-passphrase")
    return Token.objects.create(user=user).key


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_keeps_its_schema(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
