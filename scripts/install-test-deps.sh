#!/usr/bin/env bash
# System packages the test suite drives for real: Debian's docker-registry (the OCI protocol,
# issue #3), chromium (the admin pages, issue #6), and a Docker engine with a static busybox
# (the device agent on real containers, issue #11; tests/integration/docker_engine.py starts a
# private dockerd and builds FROM scratch images around /bin/busybox), and Podman with runc
# (tests/integration/podman_engine.py: the agent on Podman's Docker-compatible socket; runc
# because Debian's default crun refuses the hybrid cgroup layout of these machines). Installs
# what is missing when it can (root with apt-get); otherwise says what to install and lets the
# suite skip visibly.
set -euo pipefail

need=()
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)  # the registry's htpasswd auth
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/sbin/dockerd ] || need+=(docker.io)  # brings containerd, runc and tini
[ -x /bin/busybox ] || need+=(busybox-static)
[ -x /usr/bin/podman ] || need+=(podman)  # brings conmon and the containers-common configs
[ -x /usr/sbin/runc ] || need+=(runc)  # podman's runtime here (see above)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "note: ${need[*]} not installed; the tests that need them will be skipped." >&2
  echo "      install with: sudo apt-get install ${need[*]}" >&2
fi
