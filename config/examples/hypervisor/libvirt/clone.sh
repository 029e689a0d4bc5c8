#!/bin/sh
# clone.sh SOURCE NAME (libvirt): copies the shut-off template domain SOURCE as NAME (virt-clone,
# new disks and MAC), starts it, waits for its DHCP lease and prints the one JSON line pairlb reads:
# {"name": NAME, "address": "IP:PORT"}. Progress goes to stderr (logged by pairlb on failure).
# virt-clone needs the original shut off or paused: point the VDS's `source` at a template.
# Environment: PAIRLB_CLONE_PORT (default 80), PAIRLB_ADDR_WAIT seconds for a lease (default 120).
# List contract: `virsh list --all` shows NAME (without an address) once virt-clone has defined it.
set -eu
SOURCE=$1; NAME=$2
PORT=${PAIRLB_CLONE_PORT:-80}
WAIT=${PAIRLB_ADDR_WAIT:-120}
if virsh domstate "$NAME" >/dev/null 2>&1; then echo "clone $NAME: already exists" >&2; exit 4; fi
virt-clone --original "$SOURCE" --name "$NAME" --auto-clone >&2
virsh start "$NAME" >&2
. "$(dirname "$0")/address.sh"
i=0; ip=""
while [ -z "$ip" ] && [ "$i" -lt "$WAIT" ]; do ip=$(vm_ip "$NAME"); [ -n "$ip" ] || sleep 1; i=$((i+1)); done
[ -n "$ip" ] || { echo "clone $NAME: no DHCP lease after $WAIT s" >&2; exit 5; }
printf '{"name":"%s","address":"%s:%s"}\n' "$NAME" "$ip" "$PORT"
