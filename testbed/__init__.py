"""A test bed of hosts on one machine: network namespaces, the links between them, and faults on those links.

Each video server runs in a network namespace of its own (its own address, its own ports), the cameras in
another; all are joined by a bridge whose host side is where the control plane (Redis, the database, the
engine, the web application) is reached, through relays that can delay a link (``testbed.relay``). Faults are
calls: cut a path, drop a share of its packets (nftables inside the namespace), delay and jitter it (the
relay), move a host's clock (libfaketime on its processes). Nothing leaves the machine: the namespaces have
no route but the bridge's network, and the bridge is not forwarded anywhere.

``testbed.network`` makes and removes the namespaces; ``testbed.site`` starts a site's processes on them.

Beside the bed, the helpers every test imports (the fixtures stay in ``conftest.py``): ``testbed.waiting``
(``wait_for`` a condition, ``wait_for_engine_passes``), ``testbed.processes`` (``ROOT``, ``procfile_command``,
``stop_process``), ``testbed.simulator`` (``RunningSimulator``) and ``testbed.permissions`` (``grant``).
"""
