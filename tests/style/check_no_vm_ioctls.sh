#!/usr/bin/env bash
# The daemon never issues a VM, vCPU or KVM-device ioctl (kernel-as-it-is.md section
# 1: they answer EIO to any process but the VM's creator). Two checks:
#  - no source the daemon is built from names one (the VMM's half is daemon/vmm/,
#    the simulator's is daemon/simkernel/; the uAPI copies and the shared ioctl
#    table only define them);
#  - the tio-managerd binary has no code from daemon/vmm/ linked in.
set -euo pipefail
top=$1
managerd=$2
cd "$top"
vm_ioctls='KVM_CREATE_GUEST_MEMFD|KVM_SET_USER_MEMORY_REGION|KVM_SET_MEMORY_ATTRIBUTES\b|KVM_CREATE_DEVICE|KVM_SET_DEVICE_ATTR|KVM_HAS_DEVICE_ATTR|KVM_CREATE_VCPU|KVM_RUN\b|KVM_PRE_FAULT_MEMORY'
hits=$(grep -rnE "$vm_ioctls" daemon --include='*.cpp' --include='*.hpp' \
  | grep -vE '^daemon/(vmm|simkernel|demo)/|^daemon/kernel/uapi/|^daemon/kernel/ioctl_table\.cpp:' \
  | grep -vE '^[^:]+:[0-9]+:\s*//' || true)  # comments may speak of them
if [ -n "$hits" ]; then
  echo "the daemon names a VM ioctl:"
  echo "$hits"
  exit 1
fi
if nm -C "$managerd" | grep -q 'tio::vmm::'; then
  echo "tio-managerd links the VMM's half of KVM (daemon/vmm/)"
  exit 1
fi
echo "no VM, vCPU or KVM-device ioctl in the daemon"
