"""python manage.py propose_backups [--all] [--system NAME] [--apply]: the Capacity page's proposal."""

from django.core.management.base import BaseCommand, CommandError

from cameras.services import BackupAssignmentError
from capacity.inputs import load_site
from capacity.management.commands._options import system_id
from capacity.proposal import apply, propose


def _share(value):
    return f"{value:.0%}" if value is not None else "-"


class Command(BaseCommand):
    help = (
        "Propose backup servers that keep the worst single server failure lowest, within the rules and the "
        "servers' capacity figures; print the changes, and store them with --apply."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Reconsider every camera, not only those without one.")
        parser.add_argument("--system", help="Only this multiserver system (by name).")
        parser.add_argument("--apply", action="store_true", help="Store the proposal (all changes or none).")

    def handle(self, *args, system=None, **options):
        proposal = propose(load_site(system_id(system)), "all" if options["all"] else "unassigned")
        for change in proposal.changes:
            modes = (change.current_mode, change.proposed_mode)
            mode = "" if modes[0] == modes[1] else f" ({modes[0]} -> {modes[1]} mode)"
            self.stdout.write(f"{change.camera}: primary {change.primary}, backup {change.current_backup or 'none'} "
                              f"-> {change.proposed_backup}{mode}")  # fmt: skip
        for camera, why in proposal.unplaced:
            self.stdout.write(f"{camera}: no backup proposed: {why}")
        self.stdout.write(
            f"{len(proposal.changes)} change(s); worst case {_share(proposal.peak_before)} today, "
            f"{_share(proposal.peak_after)} with the proposal."
        )
        if not options["apply"]:
            if proposal.changes:
                self.stdout.write("Nothing stored; run again with --apply to store it.")
            return
        try:
            changed = apply(proposal)
        except BackupAssignmentError as exc:
            raise CommandError(f"Nothing was stored: {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"Stored: the backup server of {changed} camera(s) changed."))
