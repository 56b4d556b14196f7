#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (tests/fuzz/corpus/TARGET/) from scratch:
one well-formed input per shape each decoder knows, so the fuzzers start from the
inside of every format. Protobuf seeds are encoded by protoc from text.
Usage: make_seeds.py SOURCE_DIR"""
import os
import shutil
import struct
import subprocess
import sys

top = sys.argv[1]
out = os.path.join(top, "tests/fuzz/corpus")


def write(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pad(b, n):
    return b + b"\0" * (-len(b) % n)


def dstring(s, code=None):
    s = s.encode()
    return struct.pack("<I", len(s)) + s + b"\0"


def field(code, typ, value):
    if typ == "g":
        v = bytes([len(value)]) + value.encode() + b"\0"
    elif typ == "u":
        v = struct.pack("<I", value)
    else:
        v = dstring(value)
    return bytes([code, 1, ord(typ), 0]) + v


def call(path, iface, member, sig, body, unix_fds=None, serial=1):
    fields = b""
    for f in [field(1, "o", path), field(2, "s", iface), field(3, "s", member)] + \
            ([field(8, "g", sig)] if sig else []) + ([field(9, "u", unix_fds)] if unix_fds is not None else []):
        fields = pad(fields, 8) + f
    head = b"l\x01\x00\x01" + struct.pack("<III", len(body), serial, len(fields))
    return pad(head + fields, 8) + body


AUTH = b"\0AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n"
GETALL = call("/org/tio/Guest1", "org.freedesktop.DBus.Properties", "GetAll", "s", dstring("org.tio.Guest1"))
ATTACH = call("/org/tio/Guest1", "org.tio.Guest1", "AttachVm", "ha{sv}", b"\0" * 8, unix_fds=1)


def chunks(data, fds_on_last=0):
    """The framer target's input: [length][fd count][bytes] per read."""
    res = b""
    parts = [data[i:i + 255] for i in range(0, len(data), 255)]
    for i, p in enumerate(parts):
        res += bytes([len(p), fds_on_last if i == len(parts) - 1 else 0]) + p
    return res


shutil.rmtree(out, ignore_errors=True)
write("fuzz_inbound_framer", "auth-getall", chunks(AUTH + GETALL))
write("fuzz_inbound_framer", "auth-then-call-with-fd", chunks(AUTH) + chunks(ATTACH, 1))
write("fuzz_inbound_framer", "pipelined", chunks(AUTH + GETALL * 3))

policies = ["policy/example-policy.json", "packaging/etc/policy.json"]
for root, _, files in sorted(os.walk(os.path.join(top, "tests/data/policy"))):
    policies += [os.path.relpath(os.path.join(root, f), top) for f in sorted(files)]
for src in policies:
    with open(os.path.join(top, src), "rb") as f:
        write("fuzz_policy", src.replace("/", "-"), f.read())


def protoc(message, proto, text):
    return subprocess.run(["protoc", "-I", os.path.join(top, "proto"), "--encode=" + message,
                           os.path.join(top, "proto", proto)], input=text.encode(), check=True,
                          capture_output=True).stdout


def varint(n):
    b = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            b += bytes([byte | 0x80])
        else:
            return b + bytes([byte])


snapshot = protoc("tio.v1.GuestSnapshot", "tio/v1/guest_snapshot.proto", """
format_version: 1 name: "vm1" platform: "tdx" backend: "sim" state: "active" vm_type: "tdx"
ioas_id: 1 hwpt_id: 2 next_object_id: 5 journal_seq: 3 memory_model: "in-place"
devices { id: 3 bdf: "0000:3a:00.0" vfio_device: "vfio0" attached: true dev_id: 4 tdi_state: "locked"
          tsm_connected: true dsm: "0000:3a:00.0" }
viommus { id: 4 kernel_id: 6 type: "tdx" type_id: 32768 }
memory { id: 1 gpa: 4294967296 size: 8388608 fd_name: "gmem-1"
         ranges { gpa: 4294967296 size: 4194304 state: "private" }
         ranges { gpa: 4299161600 size: 4194304 state: "shared" } private_bytes: 4194304 }
""")
write("fuzz_persisted_state", "snapshot", b"\0" + snapshot)
journal = b""
for text in ['seq: 1 intent { kind: ADD region_id: 1 gpa: 4294967296 size: 8388608 }', 'seq: 1 done: 1',
             'seq: 2 intent { kind: CONVERT ranges { gpa: 4294967296 size: 2097152 to: "shared" } }',
             'seq: 2 aborted: 2', 'seq: 3 intent { kind: PUNCH ranges { gpa: 4294967296 size: 4096 } }']:
    e = protoc("tio.v1.JournalEntry", "tio/v1/memory_journal.proto", text)
    journal += varint(len(e)) + e
write("fuzz_persisted_state", "journal", b"\x01" + journal)

audit = b""
for text in ['guest: "vm1" event: "device-added" method: "AddDevice" has_peer: true peer_uid: 0 door: "vmm" '
             'object: "0000:3a:00.0"', 'guest: "vm1" event: "refusals-suppressed" detail: "20 refusals"']:
    r = protoc("tio.v1.AuditRecord", "tio/v1/audit_record.proto", text)
    audit += varint(len(r)) + r
write("fuzz_audit_log", "two-records", audit)

MAGIC = 0x54494F31
def request(op, a=0, b=0, c=0, req=0, payload=b""):
    # magic u32, op u32, seq u64, request u64, a, b, c (struct Request, 48 bytes)
    return struct.pack("<IIQQQQQ", MAGIC, op, 1, req, a, b, c) + payload
write("fuzz_sim_wire", "open-iommu", b"\0" + request(1, a=2, payload=b"/dev/iommu"))
write("fuzz_sim_wire", "read-attr", b"\0" + request(4, payload=b"/sys/bus/pci/devices/0000:3a:00.0/tsm/connect"))
write("fuzz_sim_wire", "list-dir", b"\0" + request(6, payload=b"/sys/bus/pci/devices"))
write("fuzz_sim_wire", "readlink", b"\0" + request(9, payload=b"/sys/bus/pci/devices/0000:3a:00.0"))
reply = struct.pack("<IiqQQ", MAGIC, 0, 0, 0, 1)
for i in range(4):
    write("fuzz_sim_wire", "reply-%d" % i, b"\x01" + bytes([i]) + b"\0" * 64 + reply + b"\0" * 64)

def body(*items):
    """Marshals (type, value) pairs of basic types; "a0" is an empty array whose
    elements align to 8 (a{sv}, a(tts))."""
    b = b""
    for typ, value in items:
        if typ in "so":
            b = pad(b, 4) + dstring(value)
        elif typ == "t":
            b = pad(b, 8) + struct.pack("<Q", value)
        elif typ in "uh":
            b = pad(b, 4) + struct.pack("<I", value)
        elif typ == "ay":
            b = pad(b, 4) + struct.pack("<I", len(value)) + value
        elif typ == "a0":
            b = pad(pad(b, 4) + struct.pack("<I", 0), 8)
        elif typ == "raw8":
            b = pad(b, 8) + value
    return b


RANGE = body(("t", 1 << 32), ("t", 4096), ("s", "private"))
METHODS = [
    ("CreateVDevice", body(("o", "/org/tio/Guest1/viommu/1"), ("t", 7))),
    ("TsmRequest", body(("s", "get-state"), ("ay", b"abcd"))),
    ("GetEvidence", body(("s", "certificates"))),
    ("CreateVm", body(("s", "default"), ("a0", None))),
    ("AttachVm", body(("h", 0), ("a0", None))),
    ("CreateGuestMemory", body(("t", 8 << 20), ("a0", None))),
    ("AddMemory", body(("t", 1 << 32), ("t", 8 << 20), ("h", 0), ("t", 0), ("s", "shared"), ("a0", None))),
    ("ConvertMemory", body(("t", 1 << 32), ("t", 2 << 20), ("s", "shared"))),
    ("ConvertMemoryRanges", body(("u", len(RANGE)), ("raw8", RANGE))),
    ("PunchHole", body(("t", 1 << 32), ("t", 4096))),
    ("AddDevice", body(("s", "0000:3a:00.0"), ("a0", None))),
    ("CreateVIommu", body(("o", "/org/tio/Guest1/device/0000_3a_00_0"), ("a0", None))),
    ("Get", body(("s", "org.tio.Guest1"), ("s", "State"))),
    ("GetAll", body(("s", "org.tio.Device1"))),
]
ORDER = ["GetVfioFd", "Attach", "CreateVDevice", "DestroyVDevice", "Bind", "TsmRequest", "GetEvidence",
         "GuestRequest", "Unbind", "Reset", "Remove", "CreateVm", "AttachVm", "CreateGuestMemory", "AddMemory",
         "ConvertMemory", "ConvertMemoryRanges", "PunchHole", "AddDevice", "CreateVIommu", "Teardown", "DumpState",
         "Remove", "Destroy", "Get", "Set", "GetAll"]
for name, body in METHODS:
    write("fuzz_method_args", name, bytes([ORDER.index(name)]) + body)
for i in range(len(ORDER)):
    write("fuzz_method_args", "empty-%02d" % i, bytes([i]))
