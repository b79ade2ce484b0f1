#!/bin/sh
# fasttrace runtime installer: the operator's install (the developer's is `make setup`).
#
# From a checkout (what `make install` runs):
#   sudo sh packaging/install.sh [--agent-only | --control-only] [--prefix DIR]
# From a control plane (the one-liner; ftcontrol fills in FT_SERVER and the wheel below):
#   curl -fsSL https://CONTROL/install.sh | sudo FTAGENT_DEPLOY_TOKEN=... sh -s -- \
#       [--name N] [--ip IP] [--interface IF] [--re-register]
# Uninstall (state in /etc/ftagent and /var/lib is kept unless --purge):
#   sudo sh packaging/install.sh --uninstall [--purge] [--prefix DIR]
#
# What it installs: a venv in /opt/fasttrace that sees Debian's python3-bpfcc, the
# project's wheel in it, /usr/local/bin/ftagent and /usr/local/bin/ftcontrol, the systemd
# units, /etc/ftagent (0700); and only the Debian packages the agent needs at run time
# (python3-venv, python3-bpfcc, iproute2, kernel headers): no test tools.
# A second run upgrades in place and restarts a service only if it was running.
# --prefix DIR puts every path under DIR (tests; the units then name the prefixed paths).
# The deploy token is read from $FTAGENT_DEPLOY_TOKEN only: never argv, never printed.
set -eu

# ftcontrol replaces these three lines when it serves this script (GET /install.sh).
FT_SERVER=''
FT_WHEEL_URL=''
FT_WHEEL_SHA256=''

MIN_KERNEL_MAJOR=5
MIN_KERNEL_MINOR=8 # CAP_BPF and the BPF ring buffer
SYSTEM_PYTHON=/usr/bin/python3 # Debian's: python3-bpfcc is installed for it

PREFIX=''
PARTS='agent control'
SOURCE=''
NAME=''
IP=''
IFACE=''
REREGISTER=0
UNINSTALL=0
PURGE=0
PARTS_GIVEN=0

say() { printf 'install.sh: %s\n' "$*"; }
die() {
	printf 'install.sh: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	cat <<'EOF'
usage: install.sh [--agent-only | --control-only] [--prefix DIR] [--source DIR]
                  [--name N] [--ip IP] [--interface IF] [--re-register]
       install.sh --uninstall [--purge] [--agent-only | --control-only] [--prefix DIR]
EOF
}

need_value() {
	if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi
}

while [ "$#" -gt 0 ]; do
	case "$1" in
	--agent-only)
		PARTS='agent'
		PARTS_GIVEN=1
		;;
	--control-only)
		PARTS='control'
		PARTS_GIVEN=1
		;;
	--prefix)
		need_value "$@"
		PREFIX=$2
		shift
		;;
	--source)
		need_value "$@"
		SOURCE=$2
		shift
		;;
	--name)
		need_value "$@"
		NAME=$2
		shift
		;;
	--ip)
		need_value "$@"
		IP=$2
		shift
		;;
	--interface)
		need_value "$@"
		IFACE=$2
		shift
		;;
	--re-register) REREGISTER=1 ;;
	--uninstall) UNINSTALL=1 ;;
	--purge) PURGE=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		die "unknown option: $1"
		;;
	esac
	shift
done

case "$PREFIX" in
'' | /*) ;;
*) die "--prefix must be an absolute path, not $PREFIX" ;;
esac
# Served by a control plane: a node installs the agent and registers with that server.
if [ -n "$FT_SERVER" ] && [ "$PARTS_GIVEN" -eq 0 ]; then
	PARTS='agent'
fi

VENV="$PREFIX/opt/fasttrace"
BIN_DIR="$PREFIX/usr/local/bin"
UNIT_DIR="$PREFIX/etc/systemd/system"
AGENT_ETC="$PREFIX/etc/ftagent"
AGENT_CONFIG="$AGENT_ETC/ftagent.toml"
AGENT_STATE="$PREFIX/var/lib/ftagent"
CONTROL_STATE="$PREFIX/var/lib/ftcontrol"
WHEEL_DIR="$VENV/share/fasttrace/wheels"

has_part() {
	case " $PARTS " in
	*" $1 "*) return 0 ;;
	*) return 1 ;;
	esac
}

# ---- checks: fail early, before anything is changed ----------------------------------

check_system() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (try: sudo sh install.sh ...)"
	[ -r /etc/os-release ] || die "unsupported system: no /etc/os-release (Debian or Ubuntu needed)"
	# shellcheck disable=SC1091 # the running system's file, not ours
	os_id=$(. /etc/os-release && printf '%s %s' "${ID:-}" "${ID_LIKE:-}")
	case " $os_id " in
	*" debian "* | *" ubuntu "*) ;;
	*) die "unsupported system: '${os_id% }' (Debian or Ubuntu needed)" ;;
	esac
	command -v systemctl >/dev/null 2>&1 || die "unsupported system: no systemd (systemctl not found)"
	state=$(systemctl is-system-running 2>/dev/null || true)
	case "$state" in
	'' | offline | unknown) die "unsupported system: systemd is not running (state '${state:-none}')" ;;
	esac
	if has_part agent; then
		release=$(uname -r)
		major=${release%%.*}
		rest=${release#*.}
		minor=${rest%%[!0-9]*}
		if [ "$major" -lt "$MIN_KERNEL_MAJOR" ] ||
			{ [ "$major" -eq "$MIN_KERNEL_MAJOR" ] && [ "$minor" -lt "$MIN_KERNEL_MINOR" ]; }; then
			die "unsupported kernel $release: the agent needs XDP with CAP_BPF (${MIN_KERNEL_MAJOR}.${MIN_KERNEL_MINOR} or later)"
		fi
		[ -d /sys/fs/bpf ] || die "unsupported kernel $release: no BPF file system at /sys/fs/bpf"
	fi
}

# ---- Debian packages: only what runs -------------------------------------------------

installed() {
	dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q 'install ok installed'
}

headers_package() {
	# The running kernel's headers where Debian has them, else the architecture's generic
	# package (bcc builds against the newest tree it finds).
	# Debian names that package after the architecture, Ubuntu calls it -generic.
	for candidate in "linux-headers-$(uname -r)" "linux-headers-$(dpkg --print-architecture)"; do
		if installed "$candidate" || apt-cache show "$candidate" >/dev/null 2>&1; then
			printf '%s\n' "$candidate"
			return 0
		fi
	done
	printf 'linux-headers-generic\n'
}

install_debs() {
	wanted='python3-venv'
	if has_part agent; then
		wanted="$wanted python3-bpfcc iproute2 $(headers_package)"
	fi
	if has_part control; then
		# the BGP speaker ftcontrol drives when it is served with --bgp-config
		wanted="$wanted exabgp"
	fi
	missing=''
	for p in $wanted; do
		installed "$p" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		say "installing Debian packages:$missing"
		apt-get update -q
		# shellcheck disable=SC2086 # one word per package
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
	else
		say "Debian packages present: $wanted"
	fi
}

# ---- the wheel -----------------------------------------------------------------------

# Sets WHEEL to a wheel file inside $WORK: downloaded from the control plane (checked
# against its sha256) or built from the source tree.
fetch_wheel() {
	if [ -n "$FT_WHEEL_URL" ]; then
		WHEEL="$WORK/${FT_WHEEL_URL##*/}"
		curl -fsS --retry 3 -o "$WHEEL" "$FT_WHEEL_URL" || die "cannot download $FT_WHEEL_URL"
		printf '%s  %s\n' "$FT_WHEEL_SHA256" "$WHEEL" | sha256sum -c --status ||
			die "the wheel from $FT_WHEEL_URL does not match its sha256 $FT_WHEEL_SHA256"
		return
	fi
	src=${SOURCE:-$(cd "$(dirname "$0")/.." && pwd)}
	[ -f "$src/pyproject.toml" ] || die "no source tree at $src (give --source DIR)"
	say "building the wheel from $src"
	"$VENV/bin/python" -m pip wheel -q --no-deps -w "$WORK" "$src" >&2
	WHEEL=$(ls "$WORK"/fasttrace-*.whl)
}

# ---- units -----------------------------------------------------------------------------

# The unit as shipped, with every installed path under the prefix.
install_unit() {
	name=$1
	src="$VENV/share/fasttrace/systemd/$name.service"
	[ -f "$src" ] || die "the package has no unit $src"
	tmp="$UNIT_DIR/.$name.service.new"
	sed -e "s#/usr/local/bin/#$BIN_DIR/#g" -e "s#/etc/ftagent/#$AGENT_ETC/#g" \
		-e "s#/var/lib/ftcontrol/#$CONTROL_STATE/#g" "$src" >"$tmp"
	chmod 0644 "$tmp"
	mv -f "$tmp" "$UNIT_DIR/$name.service"
}

is_active() {
	systemctl is-active --quiet "$1" 2>/dev/null
}

# ---- registration (served mode) ---------------------------------------------------------

default_route_interface() {
	ip route show default 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}'
}

address_of() {
	ip -o -4 addr show dev "$1" scope global 2>/dev/null | awk '{sub(/\/.*/, "", $4); print $4; exit}'
}

resolve_node_fields() {
	[ -n "$NAME" ] || NAME=$(hostname 2>/dev/null || uname -n)
	if [ -z "$IFACE" ]; then
		IFACE=$(default_route_interface)
		[ -n "$IFACE" ] || die "no default route to take the interface from: give --interface IF"
	fi
	if [ -z "$IP" ]; then
		IP=$(address_of "$IFACE")
		[ -n "$IP" ] || die "no IPv4 address on $IFACE: give --ip IP"
	fi
}

registered_uuid() {
	[ -f "$AGENT_CONFIG" ] || return 0
	sed -n 's/^node_uuid *= *"\(.*\)"$/\1/p' "$AGENT_CONFIG"
}

# Asks the control plane whether the token is good before anything is installed, so a
# wrong token changes nothing. The token goes through a 0600 header file, never argv.
check_token() {
	[ -n "${FTAGENT_DEPLOY_TOKEN:-}" ] || die "set FTAGENT_DEPLOY_TOKEN to the workspace deploy token"
	header="$WORK/auth-header"
	(
		umask 077
		printf 'Authorization: Bearer %s\n' "$FTAGENT_DEPLOY_TOKEN" >"$header"
	)
	code=$(curl -sS -o "$WORK/token-reply" -w '%{http_code}' -H @"$header" \
		"$FT_SERVER/api/v1/workspace") || die "cannot reach the control plane at $FT_SERVER"
	rm -f "$header"
	[ "$code" = 200 ] && return 0
	reason=$("$SYSTEM_PYTHON" -c 'import json, sys
try:
    print(json.load(sys.stdin).get("error", ""))
except ValueError:
    print("")' <"$WORK/token-reply")
	die "the control plane refused the deploy token ($code): ${reason:-no reason given}"
}

register() {
	uuid=$(registered_uuid)
	if [ -n "$uuid" ] && [ "$REREGISTER" -eq 0 ]; then
		say "already registered as node $uuid; keeping it (--re-register to register anew)"
		return 0
	fi
	if [ -n "$uuid" ]; then
		mv -f "$AGENT_CONFIG" "$AGENT_CONFIG.replaced"
	fi
	# The state directory goes into the config (deploy keeps the keys it finds): under a
	# --prefix the agent must not use the real /var/lib/ftagent.
	(
		umask 077
		printf '[agent]\nstate_dir = "%s"\n' "$AGENT_STATE" >"$AGENT_CONFIG"
	)
	say "registering node '$NAME' ($IP, $IFACE) with $FT_SERVER"
	if ! "$BIN_DIR/ftagent" deploy --server "$FT_SERVER" --name "$NAME" --ip "$IP" \
		--interface "$IFACE" --config "$AGENT_CONFIG"; then
		rm -f "$AGENT_CONFIG"
		[ -z "$uuid" ] || mv -f "$AGENT_CONFIG.replaced" "$AGENT_CONFIG"
		return 1
	fi
	rm -f "$AGENT_CONFIG.replaced"
}

# ---- install / uninstall ---------------------------------------------------------------

services() {
	for part in $PARTS; do
		case "$part" in
		agent) printf 'ftagent\n' ;;
		control) printf 'ftcontrol\n' ;;
		esac
	done
}

install_runtime() {
	was_running=''
	for svc in $(services); do
		if is_active "$svc"; then was_running="$was_running $svc"; fi
	done
	mkdir -p "$VENV" "$BIN_DIR" "$UNIT_DIR"
	if [ ! -x "$VENV/bin/python" ]; then
		say "creating $VENV (sees Debian's python3-bpfcc)"
		"$SYSTEM_PYTHON" -m venv --system-site-packages "$VENV"
	fi
	fetch_wheel
	say "installing $(basename "$WHEEL") into $VENV"
	"$VENV/bin/python" -m pip install -q "$WHEEL" >&2
	# Same version number on a rebuild: replace the package itself, keep its dependencies.
	"$VENV/bin/python" -m pip install -q --no-deps --force-reinstall "$WHEEL" >&2
	mkdir -p "$WHEEL_DIR"
	rm -f "$WHEEL_DIR"/*.whl
	cp "$WHEEL" "$WHEEL_DIR/"
	for svc in $(services); do
		ln -sfn "$VENV/bin/$svc" "$BIN_DIR/$svc"
		install_unit "$svc"
	done
	if has_part agent; then
		mkdir -p "$AGENT_ETC" "$AGENT_STATE"
		chmod 0700 "$AGENT_ETC"
		chmod 0750 "$AGENT_STATE"
	fi
	if has_part control; then
		mkdir -p "$CONTROL_STATE"
		chmod 0750 "$CONTROL_STATE"
	fi
	systemctl daemon-reload
	for svc in $was_running; do
		say "restarting $svc (it was running)"
		systemctl restart "$svc"
	done
	RUNNING_BEFORE=$was_running
}

uninstall_runtime() {
	for svc in $(services); do
		if [ -e "$UNIT_DIR/$svc.service" ]; then
			systemctl disable --now "$svc" >/dev/null 2>&1 || true
			rm -f "$UNIT_DIR/$svc.service"
		fi
		rm -f "$BIN_DIR/$svc"
	done
	systemctl daemon-reload
	# The venv holds both programs: it goes when neither is left.
	if [ ! -e "$BIN_DIR/ftagent" ] && [ ! -e "$BIN_DIR/ftcontrol" ]; then
		rm -rf "$VENV"
	fi
	if [ "$PURGE" -eq 1 ]; then
		has_part agent && rm -rf "$AGENT_ETC" "$AGENT_STATE"
		has_part control && rm -rf "$CONTROL_STATE"
		say "removed fasttrace ($PARTS) and its configuration and state"
	else
		say "removed fasttrace ($PARTS); configuration and state kept (--purge removes them)"
	fi
}

main() {
	check_system
	if [ "$UNINSTALL" -eq 1 ]; then
		uninstall_runtime
		return 0
	fi
	WORK=$(mktemp -d)
	trap 'rm -rf "$WORK"' EXIT
	fresh=1
	[ ! -e "$VENV" ] || fresh=0
	if [ -n "$FT_SERVER" ]; then
		resolve_node_fields
		check_token
	fi
	install_debs
	install_runtime
	[ -n "$FT_SERVER" ] || {
		say "installed ($PARTS) in $VENV"
		return 0
	}
	if ! register; then
		if [ "$fresh" -eq 1 ]; then
			say "registration failed: removing what this run installed"
			uninstall_runtime >/dev/null
			rmdir "$AGENT_ETC" "$AGENT_STATE" 2>/dev/null || true
		fi
		die "registration with $FT_SERVER failed (see above)"
	fi
	case " $RUNNING_BEFORE " in
	*" ftagent "*) ;; # restarted above with the new version
	*) systemctl enable --now ftagent ;;
	esac
	say "ftagent installed, registered and started; check it with: ftagent status"
}

main
