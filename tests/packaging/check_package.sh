#!/usr/bin/env bash
# The Debian package (issue 5): built with dpkg-buildpackage and lintian-clean
# (packaging/build-deb.sh fails otherwise), then unpacked into a scratch root,
# where every file a system needs must be, the binaries must run, and the bus
# policy must be well-formed XML.
# usage: check_package.sh SOURCE_DIR
set -euo pipefail
src=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bash "$src/packaging/build-deb.sh" "$work/out"
deb=$(ls "$work"/out/tio-manager_*_*.deb | grep -v dbgsym | head -1)
root="$work/root"
dpkg -x "$deb" "$root"
expected=(
  usr/sbin/tio-managerd usr/bin/tioctl usr/bin/tio-simkernel
  lib/systemd/system/tio-manager@.service lib/systemd/system/tio-manager@.socket
  lib/systemd/system/tio-simkernel.service
  usr/share/dbus-1/system.d/org.tio.Guest1.conf
  usr/share/dbus-1/interfaces/org.tio.Guest1.xml usr/share/dbus-1/interfaces/org.tio.Device1.xml
  usr/share/dbus-1/interfaces/org.tio.VIommu1.xml usr/share/dbus-1/interfaces/org.tio.Memory1.xml
  usr/share/tio-manager/policy.schema.json usr/share/doc/tio-manager/examples/policy.json
  etc/tio-manager/policy.json
  usr/lib/sysusers.d/tio-manager.conf usr/lib/tmpfiles.d/tio-manager.conf
  usr/share/man/man8/tio-managerd.8.gz usr/share/man/man8/tioctl.8.gz usr/share/man/man8/tio-simkernel.8.gz
  usr/share/tio-manager/python/tio_simkernel.py usr/share/tio-manager/simkernel-protocol.md
)
for f in "${expected[@]}"; do
  [ -e "$root/$f" ] || { echo "FAIL: $f is not in the package"; exit 1; }
done
echo "files: all ${#expected[@]} present"
dpkg-deb -f "$deb" Depends | grep -q dbus || { echo "FAIL: no dependency on dbus"; exit 1; }
# tio-managerd has libprotobuf-lite compiled in: the package names the version.
dpkg-deb -f "$deb" Static-Built-Using | grep -q "^protobuf (= [0-9]" ||
  { echo "FAIL: no Static-Built-Using for protobuf"; exit 1; }
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/tio-manager/policy.json "$work/control/conffiles" || { echo "FAIL: the policy is not a conffile"; exit 1; }
# The binaries run (usage answers 2) and the packaged policy parses as the daemon reads it.
set +e
"$root/usr/sbin/tio-managerd" >/dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: tio-managerd does not run"; exit 1; }
"$root/usr/bin/tio-simkernel" >/dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: tio-simkernel does not run"; exit 1; }
"$root/usr/bin/tioctl" >/dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: tioctl does not run"; exit 1; }
set -e
/usr/bin/python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' \
  "$root/usr/share/dbus-1/system.d/org.tio.Guest1.conf"
grep -q '^g tio-vmm' "$root/usr/lib/sysusers.d/tio-manager.conf"
echo "package: ok"
