#!/bin/bash
# Runs inside `unshare -rn` (a user and network namespace of its own): a
# TAP device for the system's NIC, the peer's address on it, the system,
# then the peer's checks. Arguments: axolotl binary, PD directory, scratch
# directory, system.xml.
set -u
AXOLOTL=$1 PDS=$2 DIR=$3 SYSTEM=$4
ip link set lo up
ip tuntap add dev ax0 mode tap
ip addr add 10.0.2.2/24 dev ax0
ip link set ax0 up
"$AXOLOTL" run "$SYSTEM" --no-build --pd-dir "$PDS" --control "$DIR/control.sock" --net tap:ax0 > "$DIR/stdout" 2> "$DIR/log" &
RUN=$!
for _ in $(seq 300); do
    grep -q "HTTP status page on TCP port 80" "$DIR/log" && break
    sleep 0.1
done
python3 "$(dirname "$0")/peer.py" ax0
STATUS=$?
kill -INT $RUN
wait $RUN
exit $STATUS
