"""Console lines an operator can read during a failover: Celery's lines for routine tasks go to DEBUG.

Beat sends the mail sweep every few seconds and the worker reports receiving and finishing it:
INFO lines that would bury the transitions (a server down, a failover, a failback), which the
engine logs at INFO itself.
"""

import logging

# Tasks that run on a schedule whatever happens; their every run is routine.
ROUTINE_TASKS = ("redundancy.send_mail",)
# Where Celery says "Sending due task", "Task … received" and "Task … succeeded".
CELERY_TASK_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


class RoutineTasksAtDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not any(task in record.getMessage() for task in ROUTINE_TASKS):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_routine_tasks() -> None:
    for name in CELERY_TASK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RoutineTasksAtDebug) for f in logger.filters):
            logger.addFilter(RoutineTasksAtDebug())
