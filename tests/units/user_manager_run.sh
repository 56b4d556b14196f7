#!/usr/bin/env bash
# The units under a real systemd (issue 5): a `systemd --user` manager
# (shared/reference/toolchain.md 3d) runs tio-simkernel.service and
# tio-manager@vm1.socket; the demo VMM connects, which starts
# tio-manager@vm1.service by socket activation (Type=notify: it must say READY),
# and walks the whole lifecycle. While the TDI runs, the service's fd store must
# hold the guest's fds; then the service is SIGKILLed: systemd restarts it
# (Restart=on-failure), hands the fds back, and the guest is still there, device and
# all. Exits 77 (skipped) where the machine cannot run a user manager.
# usage: user_manager_run.sh SOURCE_DIR BUILD_DAEMON_DIR
set -uo pipefail
src=$1 bin=$2
skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (the units run as root)"
[ -x /lib/systemd/systemd ] || skip "no /lib/systemd/systemd"
[ "$(cat /proc/1/comm)" != systemd ] || skip "PID 1 is systemd: this test fakes a booted system and must not run there"

work=$(mktemp -d)
export XDG_RUNTIME_DIR="$work/run"
mkdir -m 700 "$XDG_RUNTIME_DIR"
faked=0
cleanup() {
  systemctl --user stop tio-manager@vm1.socket tio-manager@vm1.service tio-simkernel.service >/dev/null 2>&1
  systemctl --user exit >/dev/null 2>&1
  sleep 0.5
  kill "$manager_pid" 2>/dev/null
  # The fake "booted with systemd" marker must not outlive the test: it makes
  # sd_booted() true for every program on the machine.
  [ "$faked" -eq 1 ] && rmdir /run/systemd/system
  [ -n "${TIO_KEEP:-}" ] && cp "$work/manager.log" /tmp/um_manager.log
  rm -rf "$work"
}
trap cleanup EXIT
if [ ! -d /run/systemd/system ]; then mkdir -p /run/systemd/system && faked=1; fi
/lib/systemd/systemd --user >"$work/manager.log" 2>&1 &
manager_pid=$!
for _ in $(seq 100); do
  state=$(systemctl --user is-system-running 2>/dev/null) && break
  case "$state" in running|degraded) break ;; esac
  sleep 0.1
done
case "$(systemctl --user is-system-running 2>/dev/null)" in
  running|degraded) ;;
  *) skip "the user manager did not start: $(tail -3 "$work/manager.log")" ;;
esac

units="$XDG_RUNTIME_DIR/systemd/user"
mkdir -p "$units"/{tio-manager@.service.d,tio-manager@.socket.d,tio-simkernel.service.d}
sed "s|/usr/sbin/tio-managerd|$bin/tio-managerd|" "$src/units/tio-manager@.service" >"$units/tio-manager@.service"
cp "$src/units/tio-manager@.socket" "$units/"
sed "s|/usr/bin/tio-simkernel|$bin/tio-simkernel|" "$src/units/tio-simkernel.service" >"$units/tio-simkernel.service"
# What a user manager in this sandbox cannot do (toolchain.md 3d: 226/NAMESPACE or no
# READY acknowledged), and paths under the runtime directory instead of /run. The
# shipped units are checked as they are by check_units.sh.
relax="ProtectKernelTunables=no
ProtectKernelLogs=no
ProtectControlGroups=no
ProtectHome=read-only
PrivateTmp=no"
cat >"$units/tio-simkernel.service.d/test.conf" <<EOF2
[Service]
ExecStart=
ExecStart=$bin/tio-simkernel --platform tdx --control %t/tio-simkernel/control --kernel %t/tio-simkernel/kernel
$relax
EOF2
cat >"$units/tio-manager@.socket.d/test.conf" <<EOF2
[Socket]
ListenStream=
ListenStream=%t/tio-manager/%i.sock
SocketGroup=
EOF2
cat >"$units/tio-manager@.service.d/test.conf" <<EOF2
[Service]
ExecStart=
ExecStart=$bin/tio-managerd --guest %i --platform sim-tdx --sim-socket %t/tio-simkernel/kernel --claim-dir %t/tio-manager/devices --no-system-bus
ProtectProc=default
ProcSubset=all
StandardError=append:$work/daemon.log
$relax
EOF2
systemctl --user daemon-reload
systemctl --user start tio-simkernel.service || { systemctl --user status tio-simkernel.service; exit 1; }
systemctl --user start tio-manager@vm1.socket || { systemctl --user status tio-manager@vm1.socket; exit 1; }
for _ in $(seq 50); do [ -S "$XDG_RUNTIME_DIR/tio-simkernel/control" ] && break; sleep 0.1; done

sock="$XDG_RUNTIME_DIR/tio-manager/vm1.sock"
ctl="$XDG_RUNTIME_DIR/tio-simkernel/control"
kernel="$XDG_RUNTIME_DIR/tio-simkernel/kernel"
show() { systemctl --user show -p "$1" --value tio-manager@vm1.service; }
# While the TDI runs: the fd store holds the guest; then SIGKILL.
on_run="systemctl --user show -p NFileDescriptorStore --value tio-manager@vm1.service >$work/fdstore"
"$bin/tio-vmm-demo" --socket "$sock" --guest vm1 --sim-kernel "$kernel" --sim-control "$ctl" --on-run "$on_run" >"$work/demo.out" 2>&1
rc=$?
cat "$work/demo.out"
[ $rc -eq 0 ] && grep -q "demo complete" "$work/demo.out" || { echo "FAIL: the demo did not complete"; exit 1; }
[ "$(show Type)" = notify ] && [ "$(show SubState)" = running ] || { echo "FAIL: the service is not running"; exit 1; }
[ "$(cat "$work/fdstore")" -gt 0 ] || { echo "FAIL: nothing in the fd store while the guest ran"; exit 1; }
echo "fd store held $(cat "$work/fdstore") fds while the TDI ran"

# Restart survival under systemd: a guest with a device, the daemon killed.
on_run="systemctl --user kill -s SIGKILL tio-manager@vm1.service; sleep 2"
"$bin/tio-vmm-demo" --socket "$sock" --guest vm1 --sim-kernel "$kernel" --sim-control "$ctl" --on-run "$on_run" >"$work/demo2.out" 2>&1
for _ in $(seq 50); do [ "$(show SubState)" = running ] && break; sleep 0.1; done
[ "$(show NRestarts)" -ge 1 ] || { echo "FAIL: systemd did not restart the daemon"; exit 1; }
# The TDI first: the one busctl connection below is a VMM connection, and when it
# closes, the guest's last VMM connection is gone, so the guest is torn down.
tdi=$(busctl --address="unix:path=$ctl" call org.tio.Sim1 /org/tio/Sim1 org.tio.Sim1 TdiState s 0000:3a:00.0 2>&1)
props=$(busctl --address="unix:path=$sock" get-property org.tio.Guest1.vm1 /org/tio/Guest1 org.tio.Guest1 State Devices 2>&1)
echo "after the restart: $props, TDI $tdi"
case "$props" in *'"active"'*) ;; *) cat "$work/daemon.log"; echo "FAIL: the guest did not survive"; exit 1 ;; esac
case "$props" in *0000_3a_00_0*) ;; *) cat "$work/daemon.log"; echo "FAIL: the device did not survive"; exit 1 ;; esac
[ "$tdi" = 's "run"' ] || { echo "FAIL: the TDI left RUN"; exit 1; }
echo "user manager: ok"
