# fasttrace: XDP DDoS detection/mitigation agent (ftagent) and control plane (ftcontrol).
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# What the installed programs run (packaging/install.sh installs these: the agent's for the running
# kernel's headers, ExaBGP for the control plane's BGP) and what only development and tests need.
RUNTIME_DEBS := python3-bpfcc python3-venv iproute2 linux-headers-amd64 exabgp
DEV_DEBS := bpftool xdp-tools netsniff-ng tcpdump tshark shellcheck prometheus curl bird2 chromium
DEBS  := $(RUNTIME_DEBS) $(DEV_DEBS)
# make install / make uninstall: PREFIX for a staged tree, INSTALL_ARGS e.g. --agent-only.
PREFIX ?=
INSTALL_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup test check lint unit api bpf e2e bench demo clean install uninstall

setup: $(STAMP)

# System packages first (bcc only ever from Debian), then a venv that sees them.
$(STAMP): pyproject.toml
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing Debian packages:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@$(PY) -c 'import bcc' || { echo "setup: bcc does not import in the venv (python3-bpfcc missing?)"; exit 1; }
	@touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest -q tests/unit $(PYTEST_ARGS)

api: setup
	$(VENV)/bin/pytest -q tests/api $(PYTEST_ARGS)

bpf: setup
	$(VENV)/bin/pytest -q tests/bpf $(PYTEST_ARGS)

e2e: setup
	$(VENV)/bin/pytest -q tests/e2e $(PYTEST_ARGS)

# Suites by marker (pyproject's [tool.pytest.ini_options] markers). The fast lane for
# iteration: lint, types, and the unit and API suites without anything that needs the
# kernel, namespaces, a browser or BGP daemons, on two workers.
FAST_ONLY := not (kernel or lab or browser or bgp or paced)
check: setup lint
	$(VENV)/bin/pytest -q -n 2 --dist loadscope -m "$(FAST_ONLY)" tests/unit tests/api $(PYTEST_ARGS)

# Two passes, both always run, which between them run every test once. First, on two
# pytest-xdist workers (a module's tests stay on one worker, so module fixtures are built
# once), everything not marked paced: unit, control plane, packaging, BGP against BIRD,
# the real installs, the kernel tests that count rather than pace. Then, one test at a
# time, the paced tests (floods paced and rates or times judged), so no test's rate
# depends on another's load.
test: setup lint
	@rc=0; \
	$(VENV)/bin/pytest -q -rs -n 2 --dist loadscope --durations=15 -m "not paced" tests $(PYTEST_ARGS) || rc=1; \
	$(VENV)/bin/pytest -q -rs --durations=15 -m paced tests $(PYTEST_ARGS) || rc=1; \
	exit $$rc

bench: setup
	$(PY) -m bench

demo: setup
	$(PY) -m lab.demo $(if $(DEMO_HOLD),--hold $(DEMO_HOLD))

# The operator's install (not the developer's): runtime packages only, /opt/fasttrace,
# /usr/local/bin, the systemd units. Needs root; see packaging/install.sh --help.
install:
	sh packaging/install.sh --source . $(if $(PREFIX),--prefix $(PREFIX)) $(INSTALL_ARGS)

# Removes what install put there; /etc/ftagent and /var/lib state stay (INSTALL_ARGS=--purge).
uninstall:
	sh packaging/install.sh --uninstall $(if $(PREFIX),--prefix $(PREFIX)) $(INSTALL_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
