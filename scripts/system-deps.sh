#!/usr/bin/env bash
# Debian packages the test suite starts real servers from: a Docker engine (docker.io), sshd,
# busybox-static and debootstrap (base images made locally), PostgreSQL (a team workspace),
# Chromium and fonts (the dashboard's browser tests), rsync (the data bench's peer). Installed only when
# missing; needs root.
set -euo pipefail
need=()
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
[ -x /usr/sbin/sshd ] || need+=(openssh-server openssh-client)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium fonts-liberation)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "scripts/system-deps.sh: run as root to install ${need[*]} (tests that need them will skip)" >&2
    exit 0
  fi
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
