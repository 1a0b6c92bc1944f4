#!/usr/bin/env bash
# The container checks CI runs (.ci/run), with podman standing in for Docker:
#   1. ../shared/tools/container-setup.sh (podman, podman-compose, local base images), then
#      build the Dockerfile and hold its size against the target;
#   2. the image alone, on a read-only root with no tmpfs: ready, healthy, a v1 session and V2
#      (tritonclient) against the local NumPy reference, non-root, no torch, no compiler, and a
#      SIGTERM that snapshots the session to the /data volume for the next start to restore;
#   3. docker-compose.yml: Redis + two replicas + nginx: a stream through nginx across the
#      replicas against the reference, one replica stopped mid-stream, healthchecks, a clean
#      `down`; then the single-container profile.
# The HTTP parts are scripts/container_probe.py, run with the repository's .venv
# (bash scripts/test.sh makes it). Loopback ports only. Any failure exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
IMAGE=localhost/seqserve:check
BASE=docker.io/library/python:3.11-slim-bookworm
MAX_ABOVE_BASE_MB=150
CTR=seqserve-check-image
VOL=seqserve-check-data
PROJECT=seqserve-check
SINGLE=seqserve-check-single
LOGS=$(mktemp -d /tmp/container-check.XXXXXX)
STARTED=$SECONDS

say() { echo "container_check: [$((SECONDS - STARTED))s] $*"; }
fail() {
  echo "container_check: FAILED: $*" >&2
  exit 1
}
compose() { podman-compose -p "$1" -f docker-compose.yml "${@:2}"; }
project_containers() { podman ps -a --filter "label=com.docker.compose.project=$1" --format '{{.Names}}'; }
service_container() {
  podman ps -a --filter "label=com.docker.compose.project=$1" \
    --filter "label=com.docker.compose.service=$2" --format '{{.Names}}'
}
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
probe() { "$PY" -m scripts.container_probe "$@"; }
# podman here logs harmless errors about systemd healthcheck timers: keep them in a file
quiet() { "$@" 2>>"$LOGS/podman.log"; }

cleanup() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    for c in "$CTR" $(project_containers "$PROJECT") $(project_containers "$SINGLE"); do
      echo "---- logs of $c (last 40 lines)" >&2
      podman logs --tail 40 "$c" >&2 2>&1 || true
    done
    if [ -s "$LOGS/podman.log" ]; then
      echo "---- podman errors (systemd timer noise left out)" >&2
      grep -v systemd "$LOGS/podman.log" | tail -20 >&2 || true
    fi
    echo "---- more in $LOGS" >&2
  fi
  podman rm -f -v "$CTR" >/dev/null 2>&1 || true
  podman volume rm -f "$VOL" >/dev/null 2>&1 || true
  for p in "$PROJECT" "$SINGLE"; do
    if [ -n "$(project_containers "$p")" ]; then
      compose "$p" --profile single down -v >/dev/null 2>&1 || true
    fi
  done
  [ "$status" -ne 0 ] || rm -rf "$LOGS"
  exit "$status"
}
trap cleanup EXIT

[ -x "$PY" ] || fail "$PY is missing: run bash scripts/test.sh first (it makes .venv)"
[ -f ../shared/tools/container-setup.sh ] || fail "../shared/tools/container-setup.sh is missing"

# ---- 1. tools and image ------------------------------------------------------------------
say "container setup (../shared/tools/container-setup.sh)"
bash ../shared/tools/container-setup.sh >"$LOGS/setup.log" 2>&1 || {
  tail -20 "$LOGS/setup.log" >&2
  fail "container-setup.sh"
}

say "building $IMAGE"
# --format docker keeps HEALTHCHECK (podman's default OCI format drops it); the CA bundle and
# PIP_CERT let pip inside the build through this machine's TLS setup (see container-setup.sh).
podman build --pull=never --network host --format docker \
  -v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro --build-arg PIP_CERT=/run/host-ca.crt \
  -t "$IMAGE" . >"$LOGS/build.log" 2>&1 || {
  tail -30 "$LOGS/build.log" >&2
  fail "podman build"
}
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
base=$(podman image inspect --format '{{.Size}}' "$BASE")
above=$(((size - base) / 1000000))
say "image $((size / 1000000)) MB, base $((base / 1000000)) MB: $above MB above the base (target <= $MAX_ABOVE_BASE_MB)"
[ "$above" -le "$MAX_ABOVE_BASE_MB" ] || fail "the image is $above MB above its base, over $MAX_ABOVE_BASE_MB MB"
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
[[ "$user" =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || fail "the image's USER is '$user', not a numeric non-root uid"

# ---- 2. the image alone ------------------------------------------------------------------
port=$(free_port)
say "image alone on 127.0.0.1:$port (read-only root, no tmpfs, /data a volume)"
quiet podman run -d --name "$CTR" --read-only --read-only-tmpfs=false \
  -v "$VOL:/data" -e SEQSERVE_SNAPSHOT_PATH=/data/sessions.snapshot \
  -p "127.0.0.1:$port:8000" "$IMAGE" >/dev/null
probe image "http://127.0.0.1:$port" --state "$LOGS/session.json"

quiet podman healthcheck run "$CTR" || fail "the image's HEALTHCHECK fails on a ready server"
uid=$(podman exec "$CTR" id -u)
[ "$uid" != 0 ] || fail "the server runs as root"
if podman exec "$CTR" touch /opt/seqserve/probe 2>/dev/null || podman exec "$CTR" touch /tmp/probe 2>/dev/null; then
  fail "the root filesystem is writable"
fi
if out=$(podman exec "$CTR" python -c "import torch" 2>&1); then fail "torch imports in the image"; fi
grep -q "No module named 'torch'" <<<"$out" || fail "import torch failed oddly: $out"
if podman exec "$CTR" sh -c 'command -v gcc || command -v cc || command -v g++ || command -v make'; then
  fail "a compiler or build tool is in the image"
fi
say "uid $uid, read-only root, HEALTHCHECK healthy, no torch, no compiler"

quiet podman stop -t 30 "$CTR" >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' "$CTR")
[ "$code" = 0 ] || fail "the server exited $code on SIGTERM"
logs=$(podman logs "$CTR" 2>&1)  # (not piped into grep -q: pipefail and SIGPIPE)
grep -q "wrote 1 sessions to the snapshot" <<<"$logs" || fail "no snapshot written on SIGTERM"
quiet podman start "$CTR" >/dev/null
probe resume "http://127.0.0.1:$port" --state "$LOGS/session.json"
podman rm -f -v "$CTR" >/dev/null 2>&1
podman volume rm -f "$VOL" >/dev/null

# ---- 3. the compose stack ----------------------------------------------------------------
export SEQSERVE_IMAGE="$IMAGE"
SEQSERVE_PUBLISH="127.0.0.1:$(free_port)"
SEQSERVE_GRPC_PUBLISH="127.0.0.1:$(free_port)"
export SEQSERVE_PUBLISH SEQSERVE_GRPC_PUBLISH
say "compose stack (redis, seqserve-1, seqserve-2, nginx) on $SEQSERVE_PUBLISH"
compose "$PROJECT" up -d --no-build >"$LOGS/compose-up.log" 2>&1 || {
  grep -v systemd "$LOGS/compose-up.log" | tail -20 >&2
  fail "podman-compose up"
}
replica=$(service_container "$PROJECT" seqserve-1)
[ -n "$replica" ] || fail "no container for seqserve-1"
probe stack "http://$SEQSERVE_PUBLISH" --stop "$replica"
code=$(podman inspect --format '{{.State.ExitCode}}' "$replica")
[ "$code" = 0 ] || fail "$replica exited $code on SIGTERM (not a clean drain)"
# podman 4.3 runs no healthcheck scheduler here (and podman-compose skips service_healthy
# waits on it): run each service's healthcheck once by hand instead
for svc in redis seqserve-2 nginx; do
  quiet podman healthcheck run "$(service_container "$PROJECT" "$svc")" || fail "the $svc healthcheck fails"
done
aof=$(podman exec "$(service_container "$PROJECT" redis)" redis-cli config get appendonly | tail -1)
[ "$aof" = yes ] || fail "Redis runs without AOF persistence (appendonly=$aof)"
say "healthchecks of redis, seqserve-2 and nginx pass; Redis appendonly=yes"

compose "$PROJECT" down -v >"$LOGS/compose-down.log" 2>&1 || fail "podman-compose down"
left="$(project_containers "$PROJECT")$(podman network ls -q --filter "label=com.docker.compose.project=$PROJECT")$(podman volume ls -q --filter "label=com.docker.compose.project=$PROJECT")"
[ -z "$left" ] || fail "podman-compose down left: $left"
say "compose down: no container, network or volume left"

# ---- the single-container profile: in-memory sessions ---------------------------------------
SEQSERVE_PUBLISH="127.0.0.1:$(free_port)"
say "compose --profile single (seqserve-single alone) on $SEQSERVE_PUBLISH"
compose "$SINGLE" --profile single up -d --no-build seqserve-single >"$LOGS/single-up.log" 2>&1 || {
  grep -v systemd "$LOGS/single-up.log" | tail -20 >&2
  fail "podman-compose --profile single up"
}
running=$(project_containers "$SINGLE" | tr '\n' ' ')
[ "$(project_containers "$SINGLE" | wc -l)" = 1 ] || fail "the single profile started: $running"
probe ready "http://$SEQSERVE_PUBLISH"
compose "$SINGLE" --profile single down -v >>"$LOGS/compose-down.log" 2>&1 || fail "podman-compose down (single)"
[ -z "$(project_containers "$SINGLE")" ] || fail "podman-compose down left containers of $SINGLE"

say "all container checks passed"
