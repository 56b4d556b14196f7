#!/usr/bin/env bash
# Installs everything tio-manager needs to build, test and package on Debian 12
# (bookworm), as root. The package list is the one verified in
# shared/reference/toolchain.md section 0, limited to what the project uses.
# Idempotent: apt-get is skipped entirely when every package is already present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libsdbus-c++-dev libsdbus-c++-bin libsystemd-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev
  libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev linux-libc-dev
  dbus-daemon dbus-bin systemd
  python3 python3-dbus libglib2.0-bin
  man-db
  dpkg-dev debhelper fakeroot lintian
  clang-format clang-tidy-16
  clang-16 libfuzzer-16-dev libclang-rt-16-dev
  libabsl-dev libroaring-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}"
