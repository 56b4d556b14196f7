"""The simulated kernel's /dev/kvm for VMMs written in Python (and a model for other
languages): the wire protocol of daemon/simkernel/PROTOCOL.md, enough to do what a
VMM does before it talks to tio-managerd - open /dev/kvm, create a VM and its
guest_memfds and memslots, create the KVM-VFIO device and add a VFIO file to it.
Every file it returns is a real fd (one end of a socket pair the simulator made),
so it can be passed to the daemon over D-Bus like a kernel file.

Like the real kernel, the simulator answers VM ioctls only for the process that
created the VM (EIO for any other): do them in the VMM process.

    sim = SimKernel("/run/tio-sim/sim.ctl.kernel")
    kvm = sim.kvm()
    vm = kvm.create_vm()
    gmem = vm.create_guest_memfd(64 << 20)
    vm.set_memslot(0, 1 << 32, 64 << 20, gmem)
"""
import array
import os
import socket
import struct

MAGIC = 0x54494F31  # "TIO1"
OP_OPEN, OP_IOCTL, OP_FALLOCATE, OP_READ_ATTR, OP_WRITE_ATTR, OP_LIST_DIR, OP_IDENTIFY = range(1, 8)
REQUEST = struct.Struct("=IIQQQQQ")  # magic, op, seq, request, a, b, c (48 bytes)
REPLY = struct.Struct("=IiqQQ")  # magic, err, ret, a, seq (32 bytes)
MAX_MESSAGE = 160 * 1024

# ioctl numbers (include/uapi/linux/kvm.h), as the simulator's table has them.
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
KVM_CREATE_VCPU = 0xAE41
KVM_SET_USER_MEMORY_REGION2 = 0x40A0AE49
KVM_SET_MEMORY_ATTRIBUTES = 0x4020AED2
KVM_CREATE_GUEST_MEMFD = 0xC040AED4
KVM_CREATE_DEVICE = 0xC00CAEE0
KVM_SET_DEVICE_ATTR = 0x4018AEE1
KVM_MEM_GUEST_MEMFD = 1 << 2
KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3
KVM_DEV_TYPE_VFIO = 4
KVM_DEV_VFIO_FILE = 1
KVM_DEV_VFIO_FILE_ADD = 1
GUEST_MEMFD_FLAG_MMAP = 1 << 0
GUEST_MEMFD_FLAG_INIT_SHARED = 1 << 1


class KernelError(OSError):
    """An errno from the simulated kernel."""


def _call(sock, op, payload=b"", fds=(), request=0, a=0, b=0, c=0, _seq=[0]):
    _seq[0] += 1
    header = REQUEST.pack(MAGIC, op, _seq[0], request, a, b, c)
    ancillary = []
    if fds:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
    sock.sendmsg([header + payload], ancillary)
    while True:
        data, anc, flags, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(8 * 4))
        received = []
        for level, kind, blob in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds_in = array.array("i")
                fds_in.frombytes(blob[: len(blob) - len(blob) % fds_in.itemsize])
                received.extend(fds_in)
        if not data:
            for fd in received:
                os.close(fd)
            raise KernelError(5, "the simulated kernel is gone")
        magic, err, ret, ra, seq = REPLY.unpack_from(data)
        if magic != MAGIC or seq != _seq[0]:
            for fd in received:
                os.close(fd)
            continue  # a reply to a request of this file's previous owner
        return err, ret, ra, data[REPLY.size:], received


def ioctl(fd, request, arg=0, in_buffers=(), fds=()):
    """One ioctl on a simulator file. `arg` is an int (value ioctls) or the struct's
    bytes; `in_buffers` are the bytes its input pointers name, in the table's order;
    `fds` the files inside it (the struct's fd field first). Returns (ret, out_struct
    bytes, new fds)."""
    sock = socket.socket(fileno=os.dup(fd))  # the file's own socket; closing the copy keeps the file
    try:
        if isinstance(arg, int):
            err, ret, _, out, new = _call(sock, OP_IOCTL, request=request, a=arg)
        else:
            err, ret, _, out, new = _call(sock, OP_IOCTL, bytes(arg) + b"".join(in_buffers), fds, request=request)
    finally:
        sock.close()
    if err:
        for f in new:
            os.close(f)
        raise KernelError(err, os.strerror(err))
    return ret, out, new


class SimKernel:
    """A connection to the simulator's kernel socket (tio-simkernel --kernel PATH)."""

    def __init__(self, path):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock.connect(path)

    def open(self, path, flags=os.O_RDWR):
        err, _, _, _, fds = _call(self._sock, OP_OPEN, path.encode(), a=flags)
        if err:
            raise KernelError(err, os.strerror(err))
        return fds[0]

    def kvm(self):
        return Kvm(self.open("/dev/kvm"))


class Kvm:
    def __init__(self, fd):
        self.fd = fd
        if ioctl(fd, KVM_GET_API_VERSION, 0)[0] != 12:
            raise KernelError(22, "KVM API version is not 12")

    def check_extension(self, cap):
        return ioctl(self.fd, KVM_CHECK_EXTENSION, cap)[0]

    def create_vm(self, vm_type=0):
        ret, _, fds = ioctl(self.fd, KVM_CREATE_VM, vm_type)
        return Vm(fds[0])


class Vm:
    def __init__(self, fd):
        self.fd = fd

    def create_guest_memfd(self, size, flags=0):
        _, _, fds = ioctl(self.fd, KVM_CREATE_GUEST_MEMFD, struct.pack("=QQ48x", size, flags))
        return fds[0]

    def set_memslot(self, slot, gpa, size, gmem, offset=0, userspace_addr=0):
        region = struct.pack("=IIQQQQI4x112x", slot, KVM_MEM_GUEST_MEMFD, gpa, size, userspace_addr, offset, gmem)
        ioctl(self.fd, KVM_SET_USER_MEMORY_REGION2, region, fds=(gmem,))

    def set_memory_attributes(self, gpa, size, private):
        attrs = struct.pack("=QQQQ", gpa, size, KVM_MEMORY_ATTRIBUTE_PRIVATE if private else 0, 0)
        ioctl(self.fd, KVM_SET_MEMORY_ATTRIBUTES, attrs)

    def create_vfio_device(self):
        _, out, fds = ioctl(self.fd, KVM_CREATE_DEVICE, struct.pack("=III", KVM_DEV_TYPE_VFIO, 0, 0))
        return KvmVfioDevice(fds[0])


class KvmVfioDevice:
    def __init__(self, fd):
        self.fd = fd

    def add_file(self, vfio_fd):
        # addr points at the fd: the pointer's value is not looked at, its buffer is.
        attr = struct.pack("=IIQQ", 0, KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, 1)
        ioctl(self.fd, KVM_SET_DEVICE_ATTR, attr, in_buffers=(struct.pack("=i", vfio_fd),), fds=(vfio_fd,))
