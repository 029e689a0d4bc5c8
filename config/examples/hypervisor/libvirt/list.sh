#!/bin/sh
# list.sh (libvirt): one JSON line per domain, {"name"} or, for a running one with a lease,
# {"name", "address": "IP:PORT"}. Originals are listed too; pairlb only treats <source>-clone-<6 hex>
# names of configured VDSs as clones. Exit 0 even when there are none.
set -eu
PORT=${PAIRLB_CLONE_PORT:-80}
. "$(dirname "$0")/address.sh"
virsh list --all --name | while read -r n; do
  [ -n "$n" ] || continue
  ip=""
  [ "$(virsh domstate "$n" 2>/dev/null)" = running ] && ip=$(vm_ip "$n")
  if [ -n "$ip" ]; then printf '{"name":"%s","address":"%s:%s"}\n' "$n" "$ip" "$PORT"; else printf '{"name":"%s"}\n' "$n"; fi
done
