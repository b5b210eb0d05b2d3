from celery import shared_task


@shared_task(name="redundancy.send_mail", ignore_result=True)
def send_mail() -> None:
    """The mail outbox's worker (its own queue: a hung mail server holds up nobody else)."""
    from redundancy.notifications import send_pending_mail

    send_pending_mail()
