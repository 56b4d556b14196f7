#!/usr/bin/env python3
"""What the daemon introspects must be what daemon/dbus/xml/ says (the API's one
source: the client proxies are generated from it; the server's vtables are written
by hand, so this is where they are held to it).

Usage: introspection_matches_xml.py ADDRESS XML_DIR
Creates one object of every kind on the guest at ADDRESS, introspects each, and
compares methods (argument names, types, directions), signals (argument names and
types) and properties (types, access) interface by interface. Annotations are not
compared: sd-bus adds its own. Prints each difference; exits 1 if there is any.
"""
import os
import sys
import xml.etree.ElementTree as ET

import dbus


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
    address, xml_dir = sys.argv[1], sys.argv[2]
    c = dbus.connection.Connection(address)

    def call(path, iface, method, sig="", args=()):
        return c.call_blocking(None, path, iface, method, sig, list(args))

    root = "/org/tio/Guest1"
    call(root, "org.tio.Guest1", "CreateVm", "sa{sv}", ["sim", {}])
    gmem = call(root, "org.tio.Guest1", "CreateGuestMemory", "ta{sv}", [8 << 20, {}])
    region = call(root, "org.tio.Guest1", "AddMemory", "tthtsa{sv}", [1 << 32, 8 << 20, gmem, 0, "shared", {}])
    device = call(root, "org.tio.Guest1", "AddDevice", "sa{sv}", ["0000:3a:00.0", {}])
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
