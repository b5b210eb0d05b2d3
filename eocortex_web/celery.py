import os

from celery import Celery

from eocortex_web.log_filters import quiet_routine_tasks

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eocortex_web.settings")

app = Celery("eocortex_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
quiet_routine_tasks()
