import os

from celery import Celery, signals
from django.conf import settings

from eocortex_web.log_filters import quiet_routine_tasks

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eocortex_web.settings")

app = Celery("eocortex_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
quiet_routine_tasks()

if settings.LOG_FORMAT == "json":
    # Celery's workers (the agents, mail, export) keep Django's LOGGING, so their lines are JSON like the others'.
    @signals.setup_logging.connect
    def keep_django_logging(**kwargs):
        pass
