#!/bin/sh
# destroy.sh NAME (libvirt): stops and undefines a clone with its storage. Refuses any name that is
# not a pairlb clone name (<source>-clone-<6 hex>), so an original can never be deleted this way.
set -eu
NAME=$1
case "$NAME" in
  *-clone-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) ;;
  *) echo "destroy $NAME: not a clone name; refused" >&2; exit 2 ;;
esac
virsh domstate "$NAME" >/dev/null 2>&1 || { echo "destroy $NAME: no such VM" >&2; exit 1; }
[ "$(virsh domstate "$NAME")" = "shut off" ] || virsh destroy "$NAME" >&2
virsh undefine "$NAME" --remove-all-storage >&2
echo "destroyed $NAME"
