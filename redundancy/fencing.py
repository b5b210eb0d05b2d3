"""Fencing tokens: which engine worker's decisions the database takes for a multiserver system.

A lease in Redis (``redundancy.leases``) says which worker should decide; it cannot stop a worker that
paused (a long GC, a frozen VM, SIGSTOP) past its lease from writing when it runs again. So each worker
that takes a system's lease begins a term in the database (``DecidingTerm``: the next token), and every
transaction that stores decisions first locks the system's term row and checks that its token is still the
current one; a worker whose term has been superseded is refused and loads everything again. The tokens are
counted by the database, not by Redis: a Redis failover that loses the last writes cannot hand out a token
twice. The desired sets in Redis carry the token too (``live.write_desired_fenced``), and agents refuse an
earlier term's word.
"""

from django.db import transaction
from django.utils import timezone

from redundancy.models import DecidingTerm


class TermSuperseded(Exception):
    """Another worker began a later term for these systems: this worker's decisions for them are refused."""

    def __init__(self, systems: set[int]):
        super().__init__(f"term superseded for systems {sorted(systems)}")
        self.systems = systems


def begin_term(system: int, worker: str) -> int:
    """A new term for ``system``, held by ``worker``: its token, one more than any before."""
    with transaction.atomic():
        DecidingTerm.objects.bulk_create([DecidingTerm(system_id=system)], ignore_conflicts=True)
        term = DecidingTerm.objects.select_for_update().get(system_id=system)
        term.token += 1
        term.worker, term.since = worker, timezone.now()
        term.save(update_fields=["token", "worker", "since"])
        return term.token


def check_terms(terms: dict[int, int]) -> None:
    """Within the caller's transaction: lock the systems' term rows (a worker beginning a term waits for this
    transaction) and raise ``TermSuperseded`` for those whose current token is not the one held."""
    current = dict(DecidingTerm.objects.select_for_update().filter(system_id__in=terms)
                   .values_list("system_id", "token"))  # fmt: skip
    stale = {system for system, token in terms.items() if current.get(system) != token}
    if stale:
        raise TermSuperseded(stale)
