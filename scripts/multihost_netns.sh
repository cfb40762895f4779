#!/usr/bin/env bash
# Run an MPI command on two hosts made on this machine: two network namespaces joined by a veth
# pair, one rank in each, talking TCP over the veth. Needs root (ip netns) and MPICH's mpiexec
# (pip install -e '.[mpi]'; the one on PATH, or $MPIEXEC).
#
#   scripts/multihost_netns.sh transformer-jit train --max-iters 200 --out-dir out-2hosts
#   scripts/multihost_netns.sh python scripts/bench_ddp.py --worker baby --steps 10
#
# Each namespace has its loopback and one end of the veth (named tj0 in both), addressed
# 10.231.0.1/24 (host 0) and 10.231.0.2/24 (host 1): addresses that exist only inside these two
# namespaces, with no route anywhere else, so the job's traffic can only cross the veth or stay on
# a loopback. mpiexec (hydra) runs in host 0 and reads a hostfile naming both addresses; it starts
# the proxy of each host through a launcher that enters that host's namespace (-launcher rsh
# -launcher-exec), and binds its own connections to tj0 (-iface). The ranks send their data with
# UCX over TCP on tj0 only (UCX_TLS=tcp, UCX_NET_DEVICES=tj0), never through shared memory. The
# bytes that crossed the veth are printed at the end; the namespaces are removed on exit, whatever
# the outcome. Exit status: the command's, or 77 when the namespaces cannot be made here.
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]   (runs COMMAND on 2 ranks, one per namespace host)" >&2
    exit 2
fi
MPIEXEC=${MPIEXEC:-$(command -v mpiexec || true)}
if [ -z "$MPIEXEC" ]; then
    echo "$0: mpiexec not found: pip install -e '.[mpi]' (or set MPIEXEC)" >&2
    exit 2
fi

host0=tjh$$a host1=tjh$$b      # namespace names, unique to this run
addr0=10.231.0.1 addr1=10.231.0.2
work=$(mktemp -d)
cleanup() {
    ip netns del "$host0" 2>/dev/null || true
    ip netns del "$host1" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make_hosts() {
    ip netns add "$host0" && ip netns add "$host1" &&
    ip link add tj0 netns "$host0" type veth peer name tj0 netns "$host1" &&
    ip -n "$host0" addr add "$addr0/24" dev tj0 && ip -n "$host1" addr add "$addr1/24" dev tj0 &&
    for ns in "$host0" "$host1"; do ip -n "$ns" link set lo up && ip -n "$ns" link set tj0 up || return 1; done
}
if ! make_hosts 2>"$work/ip.err"; then
    echo "$0: cannot make network namespaces here (root and the ip command are needed): $(head -1 "$work/ip.err")" >&2
    exit 77
fi
# A veth reports its carrier a moment after both ends are set up; UCX refuses a device that is not up yet.
for ns in "$host0" "$host1"; do
    for _ in $(seq 200); do
        ip -n "$ns" link show tj0 | grep -q "state UP" && continue 2
        sleep 0.05
    done
    echo "$0: the veth in $ns did not come up" >&2
    exit 77
done

printf '%s:1\n%s:1\n' "$addr0" "$addr1" > "$work/hosts"
cat > "$work/enter-host" <<EOF
#!/bin/sh
# hydra's launcher: enter-host HOST COMMAND... runs COMMAND in the namespace of HOST
case "\$1" in
    $addr0) ns=$host0 ;;
    $addr1) ns=$host1 ;;
    *) echo "enter-host: unknown host \$1" >&2; exit 1 ;;
esac
shift
exec ip netns exec "\$ns" sh -c "\$*"
EOF
chmod +x "$work/enter-host"

veth_bytes() {  # bytes host 0 has received and sent over the veth
    ip netns exec "$host0" cat /sys/class/net/tj0/statistics/rx_bytes /sys/class/net/tj0/statistics/tx_bytes | paste -sd' '
}
read -r rx0 tx0 <<< "$(veth_bytes)"
status=0
ip netns exec "$host0" "$MPIEXEC" -f "$work/hosts" -n 2 -launcher rsh -launcher-exec "$work/enter-host" -iface tj0 \
    -genv UCX_TLS tcp -genv UCX_NET_DEVICES tj0 "$@" || status=$?
read -r rx1 tx1 <<< "$(veth_bytes)"
echo "veth between the two hosts: host 0 received $((rx1 - rx0)) bytes and sent $((tx1 - tx0)) bytes" >&2
exit $status
