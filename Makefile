# `make run` and `make test` are all a fresh Linux machine with Python 3.11 and git needs.
PYTHON := $(shell command -v python3.11 || command -v python3)
VENV := .venv
PYTEST_ARGS ?=
# The browser libraries the pages load, built into static/ (never committed, never from a CDN).
VENDOR := static/vendor/hls.min.js
# axe-core, the accessibility checker the browser tests run in each page: a test tool, kept out of static/.
AXE := testbed/vendor/axe.min.js

.PHONY: run test lint clean chromium rtsp-cameras testbed mutation screenshots

run: $(VENV)/.installed rtsp-cameras $(VENDOR)
	$(VENV)/bin/python -m eocortex_web.launcher run

test: $(VENV)/.installed chromium rtsp-cameras testbed $(VENDOR) $(AXE)
	$(VENV)/bin/python -m eocortex_web.launcher test $(PYTEST_ARGS)

# The browser tests drive Debian's chromium (never a downloaded browser); installed when we may.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "make: the browser tests need Debian's chromium: sudo apt-get install chromium" >&2; fi; }

# The simulated RTSP cameras are GStreamer's RTSP server, driven from Debian's Python (simulation/rtsp_server.py).
RTSP_PACKAGES := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-bad
rtsp-cameras:
	@/usr/bin/python3 -c "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); \
	  from gi.repository import Gst, GstRtspServer; Gst.init(None); \
	  assert all(Gst.ElementFactory.find(e) for e in ('appsrc', 'h264parse', 'h265parse', 'rtph264pay', 'rtph265pay'))" \
	  2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $(RTSP_PACKAGES); \
	  else echo "make: the RTSP cameras need GStreamer's RTSP server: sudo apt-get install $(RTSP_PACKAGES)" >&2; fi; }

# The network test bed (testbed/, tests marked netns): namespaces and veths (iproute2), packet loss (nftables),
# a host's clock moved (libfaketime). Needs root, as the namespaces do; without it those tests skip and say why.
TESTBED_PACKAGES := iproute2 nftables faketime
testbed:
	@command -v ip >/dev/null 2>&1 && command -v nft >/dev/null 2>&1 && command -v faketime >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $(TESTBED_PACKAGES); \
	  else echo "make: the network test bed needs root and $(TESTBED_PACKAGES)" >&2; fi; }

# hls.js, pinned with its checksum in package-lock.json, from the npm registry; its full build, which
# plays EXT-X-GAP playlists and H.265 in MPEG-TS (the light one has no H.265). Scripts never run.
# Without npm (a machine with Python only) tools/npm_vendor.py takes the same tarball, checked against the lock.
static/vendor/hls.min.js: package.json package-lock.json
	mkdir -p $(@D)
	if command -v npm >/dev/null 2>&1; then \
	  npm ci --ignore-scripts --no-audit --no-fund && cp node_modules/hls.js/dist/hls.min.js $@; \
	else $(PYTHON) tools/npm_vendor.py hls.js dist/hls.min.js $@; fi

$(AXE): package.json package-lock.json
	mkdir -p $(@D)
	if command -v npm >/dev/null 2>&1; then \
	  npm ci --ignore-scripts --no-audit --no-fund && cp node_modules/axe-core/axe.min.js $@; \
	else $(PYTHON) tools/npm_vendor.py axe-core axe.min.js $@; fi

# The pictures in docs/screenshots/ the README shows, taken by the browser tests that reach each state.
SCREENSHOT_TESTS := tests/test_servers_browser.py tests/test_connection_browser.py tests/test_capacity_browser.py \
  tests/test_reports_browser.py tests/test_events_browser.py
screenshots:
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(MAKE) test PYTEST_ARGS="$(SCREENSHOT_TESTS)"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# Mutation run on the engine's pure decisions (cosmic-ray.toml); not part of `make test`. cosmic-ray writes
# each mutant into the module file, so it works on a copy of the tree, with a database of its own. About 11
# minutes on two cores: 188 mutants, nearly all killed by the pure tests in a few seconds each.
MUTATION_DIR := var/mutation
# The equivalent mutants named in cosmic-ray.toml: more survivors than that fail the target.
MUTATION_EQUIVALENT := 2
mutation: export MUTATION_TALLY := import json, sys; r = [json.loads(line)[1] for line in sys.stdin]; \
  r = [x for x in r if x and x["worker_outcome"] != "skipped"]; s = sum(x["test_outcome"] == "survived" for x in r); \
  print(f"mutants: {len(r) - s} killed, {s} survived, {len(r)} in all"); sys.exit(s > $(MUTATION_EQUIVALENT))

mutation: $(VENV)/.installed
	rm -rf $(MUTATION_DIR) && mkdir -p $(MUTATION_DIR)/tree $(MUTATION_DIR)/var
	git ls-files -z --cached --others --exclude-standard \
	  | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C $(MUTATION_DIR)/tree
	cd $(MUTATION_DIR)/tree && export PATH="$(CURDIR)/$(VENV)/bin:$$PATH" VAR_DIR="$(CURDIR)/$(MUTATION_DIR)/var" \
	  && cosmic-ray init cosmic-ray.toml ../session.sqlite \
	  && cr-filter-operators ../session.sqlite cosmic-ray.toml \
	  && cosmic-ray baseline cosmic-ray.toml \
	  && cosmic-ray exec cosmic-ray.toml ../session.sqlite \
	  && cr-report --surviving-only --show-diff ../session.sqlite \
	  && cosmic-ray dump ../session.sqlite | python -c "$$MUTATION_TALLY"

# Caches and the private Redis's files; the database and the secrets under var/ are kept.
clean:
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache var/redis var/staticfiles

$(VENV)/.installed: requirements.txt
	@test -n "$(PYTHON)" || { echo "make: python3.11 or python3 is needed" >&2; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -r requirements.txt
	touch $@
