"""python manage.py capacity_report [--system NAME] [--pairs] [--json]: the Capacity page's table."""

import json

from django.core.management.base import BaseCommand

from capacity.api.serializers import CapacityPlanSerializer
from capacity.headline import tightest
from capacity.inputs import load_site
from capacity.management.commands._options import system_id
from capacity.planner import plan


def _cell(figures, capacity, dimension, digits):
    value = f"{figures.get(dimension):.{digits}f}"
    return value if not capacity[dimension] else f"{value}/{capacity[dimension]:g}"


class Command(BaseCommand):
    help = "Print every server's normal and worst-case load against its capacity figures, with warnings."

    def add_arguments(self, parser):
        parser.add_argument("--system", help="Only this multiserver system (by name).")
        parser.add_argument("--pairs", action="store_true", help="Also the worst two-server failure.")
        parser.add_argument("--json", action="store_true", help="The figures of GET /api/capacity/, as JSON.")

    def handle(self, *args, system=None, pairs=False, **options):
        capacity_plan = plan(load_site(system_id(system)), pairs=pairs)
        if options["json"]:
            self.stdout.write(json.dumps(CapacityPlanSerializer(capacity_plan).data, indent=2))
            return
        header = ["server", "system", "cams", "normal Mbit/s", "CPU", "GB", "worst: fails", "Mbit/s", "CPU", "GB",
                  "cams", "peak"]  # fmt: skip
        if pairs:
            header += ["two fail", "Mbit/s"]
        rows = [header]
        for p in capacity_plan.servers:
            c, n = p.capacity, p.normal.figures
            row = [p.server.name, p.server.system.name, _cell(n, c, "cameras", 0), _cell(n, c, "mbps", 1),
                   _cell(n, c, "cores", 2), _cell(n, c, "storage_gb", 0)]  # fmt: skip
            if p.worst:
                w = p.worst.figures
                row += [p.worst.failed[0], _cell(w, c, "mbps", 1), _cell(w, c, "cores", 2),
                        _cell(w, c, "storage_gb", 0), _cell(w, c, "cameras", 0)]  # fmt: skip
            else:
                row += ["-", "", "", "", ""]
            row.append(f"{p.peak:.0%}" if p.peak is not None else "not set")
            if pairs:
                pair = p.worst_pair
                row += ["+".join(pair.failed), _cell(pair.figures, c, "mbps", 1)] if pair else ["-", ""]
            rows.append(row)
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
        for row in rows:
            self.stdout.write("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
        self.stdout.write("")
        self.stdout.write("Figures are load/capacity where a capacity figure is set; GB covers the retention period.")
        headline = tightest(capacity_plan)
        self.stdout.write(headline.text if headline else "No capacity figures set: no server's load is checked.")
        for p in capacity_plan.servers:
            for warning in p.warnings:
                self.stdout.write(f"{warning.level.upper():7} {p.server.name}: {warning.text}")
