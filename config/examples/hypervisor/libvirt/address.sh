# Sourced by clone.sh and list.sh: vm_ip NAME prints the domain's first IPv4 address (DHCP lease) or nothing.
vm_ip() {
  virsh domifaddr "$1" --source lease 2>/dev/null | awk '$3 == "ipv4" { sub(/\/.*/, "", $4); print $4; exit }'
}
