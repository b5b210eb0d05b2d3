import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eocortex_web.settings")

app = Celery("eocortex_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
