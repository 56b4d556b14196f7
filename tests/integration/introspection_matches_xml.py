#!/usr/bin/env python3
"""What the daemon introspects must be what daemon/dbus/xml/ says (the API's one
source: the client proxies are generated from it; the server's vtables are written
by hand, so this is where they are held to it).

Usage: introspection_matches_xml.py ADDRESS XML_DIR SIM_KERNEL_SOCKET
Creates one object of every kind on the guest at ADDRESS (the VM, its guest_memfd
and KVM-VFIO device made here, as a VMM does, through the simulator's kernel socket
and the project's tio_simkernel module), introspects each, and
compares methods (argument names, types, directions), signals (argument names and
types) and properties (types, access) interface by interface. Annotations are not
compared: sd-bus adds its own. Prints each difference; exits 1 if there is any.
"""
import os
import sys
import xml.etree.ElementTree as ET

import dbus

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../daemon/simkernel/python"))
import tio_simkernel  # noqa: E402


def members(iface):
    out = {}
    for m in iface:
        if m.tag not in ("method", "signal", "property"):
            continue
        if m.tag == "property":
            out[(m.tag, m.get("name"))] = (m.get("type"), m.get("access"))
        else:
            args = tuple((a.get("name"), a.get("type"), a.get("direction", "out" if m.tag == "signal" else "in"))
                         for a in m if a.tag == "arg")
            out[(m.tag, m.get("name"))] = args
    return out


def interfaces(xml_text):
    return {i.get("name"): members(i) for i in ET.fromstring(xml_text) if i.tag == "interface"}


def main():
    address, xml_dir, kernel_socket = sys.argv[1], sys.argv[2], sys.argv[3]
    c = dbus.connection.Connection(address)
    vm = tio_simkernel.SimKernel(kernel_socket).kvm().create_vm()

    def call(path, iface, method, sig="", args=()):
        return c.call_blocking(None, path, iface, method, sig, list(args))

    root = "/org/tio/Guest1"
    # libdbus learns whether fds may pass when authentication ends, which on a p2p
    # connection is at the first message: one without fds goes first.
    call(root, "org.freedesktop.DBus.Peer", "Ping")
    call(root, "org.tio.Guest1", "AttachVm", "ha{sv}", [dbus.types.UnixFd(vm.fd), {}])
    gmem = vm.create_guest_memfd(8 << 20)
    vm.set_memslot(0, 1 << 32, 8 << 20, gmem)
    region = call(root, "org.tio.Guest1", "AddMemory", "tthtsa{sv}",
                  [1 << 32, 8 << 20, dbus.types.UnixFd(gmem), 0, "shared", {}])
    device = call(root, "org.tio.Guest1", "AddDevice", "sa{sv}", ["0000:3a:00.0", {}])
    vfio = call(device, "org.tio.Device1", "GetVfioFd")
    vm.create_vfio_device().add_file(vfio.take())
    call(device, "org.tio.Device1", "Attach")
    viommu = call(root, "org.tio.Guest1", "CreateVIommu", "oa{sv}", [device, {}])

    expected = {}
    for name in sorted(os.listdir(xml_dir)):
        if name.endswith(".xml"):
            with open(os.path.join(xml_dir, name)) as f:
                expected.update(interfaces(f.read()))

    differences = []
    for path, iface in ((root, "org.tio.Guest1"), (device, "org.tio.Device1"), (viommu, "org.tio.VIommu1"),
                        (region, "org.tio.Memory1")):
        served = interfaces(call(path, "org.freedesktop.DBus.Introspectable", "Introspect")).get(iface)
        if served is None:
            differences.append(f"{path}: {iface} is not served")
            continue
        want = expected.pop(iface)
        for key in sorted(set(want) | set(served)):
            if want.get(key) != served.get(key):
                differences.append(f"{iface} {key[0]} {key[1]}: the XML says {want.get(key)}, "
                                   f"the daemon serves {served.get(key)}")
    for iface in expected:
        differences.append(f"{iface}: in the XML but on no object the daemon serves")
    for d in differences:
        print(d)
    print(f"{len(differences)} differences")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
