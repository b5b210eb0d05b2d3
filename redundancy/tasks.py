from celery import shared_task

from redundancy.engine import Engine


@shared_task(name="redundancy.tick", ignore_result=True)
def tick() -> None:
    """One pass of the redundancy engine (scheduled by beat; also sent when a server announces leaving)."""
    Engine().tick()


@shared_task(name="redundancy.send_mail", ignore_result=True)
def send_mail() -> None:
    """The mail outbox's worker (its own queue: a hung mail server holds up nobody else)."""
    from redundancy.notifications import send_pending_mail

    send_pending_mail()
