#!/usr/bin/env bash
# The README's demo command: installs and builds, then runs the product end to end:
# tio-simkernel (the simulated kernel), a private bus configured like the system bus
# with tio-manager's bus policy, tio-managerd socket-activated by
# systemd-socket-activate on the guest socket, and tio-vmm-demo walking a VMM
# through the whole lifecycle. While the device runs, the admin's view of the guest
# is shown with busctl on the (private) system bus.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${TIO_BUILD_ROOT:-$top/build}/release
platform=${TIO_DEMO_PLATFORM:-tdx}

"$top/packaging/install-deps.sh"
cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIO_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target tio-simkernel tio-managerd tio-vmm-demo tioctl >/dev/null
export TIOCTL="$build/daemon/tioctl"

run=$(mktemp -d /tmp/tio-demo-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT

echo "=== tio-simkernel --platform $platform"
"$build/daemon/tio-simkernel" --platform "$platform" --control "$run/sim.ctl" --kernel "$run/sim.kernel" &
pids+=($!)

echo "=== private system bus with policy/org.tio.Guest1.conf"
mkdir -p "$run/system.d"
cp "$top/policy/org.tio.Guest1.conf" "$run/system.d/"
sed "s|@DIR@|$run|g" "$top/tests/data/system-bus.conf.in" > "$run/system-bus.conf"
dbus-daemon --config-file="$run/system-bus.conf" --nofork --print-address=3 3>"$run/bus.address" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do [ -s "$run/bus.address" ] && [ -S "$run/sim.ctl" ] && break; sleep 0.05; done
export DBUS_SYSTEM_BUS_ADDRESS=$(head -1 "$run/bus.address")

echo "=== tio-managerd@vm1, socket-activated on $run/vm1.sock"
systemd-socket-activate -l "$run/vm1.sock" -E DBUS_SYSTEM_BUS_ADDRESS \
  "$build/daemon/tio-managerd" --guest vm1 --platform "sim-$platform" \
  --sim-socket "$run/sim.kernel" --claim-dir "$run/claims" 2>"$run/daemon.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$run/vm1.sock" ] && break; sleep 0.05; done

cat > "$run/admin-view.sh" <<'VIEW'
echo "--- admin view on the system bus: busctl tree org.tio.Guest1.vm1"
busctl tree org.tio.Guest1.vm1
echo "--- busctl introspect org.tio.Guest1.vm1 /org/tio/Guest1/device/0000_3a_00_0"
busctl introspect org.tio.Guest1.vm1 /org/tio/Guest1/device/0000_3a_00_0
echo "--- tioctl show vm1"
"$TIOCTL" show vm1
VIEW

echo "=== tio-vmm-demo (the first connection starts the daemon)"
"$build/daemon/tio-vmm-demo" --socket "$run/vm1.sock" --sim-kernel "$run/sim.kernel" --sim-control "$run/sim.ctl" \
  --on-run "bash $run/admin-view.sh"

echo "=== tio-managerd's journal lines"
cat "$run/daemon.log"
