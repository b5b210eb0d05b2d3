from celery import shared_task

from redundancy.engine import Engine


@shared_task(name="redundancy.tick", ignore_result=True)
def tick() -> None:
    """One pass of the redundancy engine (scheduled by beat; also sent when a server announces leaving)."""
    Engine().tick()
