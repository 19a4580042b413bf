#!/usr/bin/env bash
# Build the real images and run the real compose.yaml in a Docker engine this script starts
# itself (own socket, data root in a temporary folder), then check the stack as an operator
# uses it. Everything it started is removed on exit, whatever happens. One line per check, then
# `containers: P passed, F failed`; exit 1 if any check failed. Without a usable engine: exit 1
# under CI=true, a message and exit 0 otherwise.
#   DIGITS_CONTAINERS_CACHE  folder kept between runs (base tarball, saved images); default
#                            ~/.cache/digits-containers
set -uo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root" || exit 1
started_at=$SECONDS
cache="${DIGITS_CONTAINERS_CACHE:-$HOME/.cache/digits-containers}"
python="$repo_root/.venv/bin/python"
checks="$repo_root/docker/checks.py"
project=digitsct
passed=0
failed=0

no_engine() {
    echo "containers: no usable Docker engine: $*" >&2
    if [[ "${CI:-}" == "true" ]]; then exit 1; fi
    echo "containers: skipped (install docker.io, docker-compose and debootstrap, run as root)"
    exit 0
}

[[ $(id -u) -eq 0 ]] || no_engine "this script starts dockerd itself and needs root"
for tool in dockerd docker-compose debootstrap; do
    command -v "$tool" >/dev/null || no_engine "$tool is not installed"
done
docker_bin="$(command -v /usr/bin/docker docker | head -1)"
[[ -x "$python" ]] || no_engine "no project .venv (run scripts/setup.sh)"

work="$(mktemp -d /tmp/digits-containers.XXXXXX)"
export DOCKER_HOST="unix://$work/docker.sock"
export COMPOSE_PROJECT_NAME=$project
export COMPOSE_HTTP_TIMEOUT=300
dockerd_pid=""
server_pid=""
docker() { "$docker_bin" "$@"; }
compose() {
    docker-compose --project-directory "$work/stack" -f "$work/stack/compose.yaml" \
        -f "$work/stack/compose.test.yaml" "$@"
}

# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {
    set +e
    if [[ -n "$dockerd_pid" ]] && kill -0 "$dockerd_pid" 2>/dev/null; then
        docker stack rm "$project" >/dev/null 2>&1
        docker swarm leave --force >/dev/null 2>&1
        compose down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1
        docker ps -aq | xargs -r "$docker_bin" rm -f >/dev/null 2>&1
        docker volume prune -f >/dev/null 2>&1
        docker network prune -f >/dev/null 2>&1
        kill "$dockerd_pid"
        for _ in $(seq 1 30); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
        kill -9 "$dockerd_pid" 2>/dev/null
    fi
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null
    # Mounts dockerd may leave under its data root (overlays, netns) go before the folder does.
    grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

result() { # NAME RC [DETAIL]
    if [[ "$2" -eq 0 ]]; then
        passed=$((passed + 1))
        echo "ok   $1${3:+: $3}"
    else
        failed=$((failed + 1))
        echo "FAIL $1${3:+: $3}"
    fi
}

finish() {
    echo "containers: runtime $((SECONDS - started_at)) s"
    echo "containers: $passed passed, $failed failed"
    [[ $failed -eq 0 ]] || exit 1
    exit 0
}

# --- the engine ------------------------------------------------------------------------------
mkdir -p "$work/docker" "$work/exec" "$cache"
dockerd --host "$DOCKER_HOST" --data-root "$work/docker" --exec-root "$work/exec" \
    --pidfile "$work/dockerd.pid" --bridge none --iptables=true \
    >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
if ! docker info >/dev/null 2>&1; then
    tail -20 "$work/dockerd.log" >&2
    no_engine "dockerd did not start"
fi

# --- images ----------------------------------------------------------------------------------
# A base image from Debian's packages where Docker Hub cannot be reached: bookworm (Python
# 3.11), venv, useradd, and this machine's CA bundle for HTTPS during builds.
base_image=python:3.11-slim
pg_build_base=debian:bookworm-slim
if ! docker pull -q "$base_image" >/dev/null 2>&1; then
    base_image=digits-base/python:3.11-bookworm
    pg_build_base=$base_image
    tarball="$cache/bookworm-python3.11.tar"
    if [[ ! -s "$tarball" ]]; then
        echo "containers: debootstrap bookworm (minbase, python3.11)"
        rootfs="$work/rootfs"
        if ! debootstrap --variant=minbase --include=python3,python3-venv,passwd,ca-certificates \
            bookworm "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1; then
            tail -20 "$work/debootstrap.log" >&2
            result "base image (debootstrap)" 1
            finish
        fi
        ln -sf python3 "$rootfs/usr/bin/python"
        cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
        rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*
        tar -C "$rootfs" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
        rm -rf "$rootfs"
    fi
    # pip carries its own CA list; point it (and Python's ssl) at the system bundle.
    docker import -c 'ENV LANG=C.UTF-8' -c 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        -c 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' -c 'CMD ["python3"]' \
        "$tarball" "$base_image" >/dev/null
fi

# Built images are saved in the cache under a hash of what went into them.
load_or_build() { # TAG KEY BUILD-ARGS...
    local tag="$1" key="$2" saved
    shift 2
    saved="$cache/image-${tag//[:\/]/_}-$key.tar"
    if [[ -s "$saved" ]] && docker load -q -i "$saved" >/dev/null; then
        return 0
    fi
    docker build -q --network host --tag "$tag" "$@" >"$work/build-${tag//[:\/]/_}.log" 2>&1 \
        || { tail -30 "$work/build-${tag//[:\/]/_}.log" >&2; return 1; }
    rm -f "$cache/image-${tag//[:\/]/_}-"*.tar
    docker save -o "$saved.part" "$tag" && mv "$saved.part" "$saved"
}
tree_hash() { git ls-files -s -- "$@" | sha256sum | cut -c1-16; }

# The local CPU torch wheel, served to the build (pip reads PIP_FIND_LINKS) when PyTorch's
# index cannot be reached.
torch_args=()
if ! curl -fsS -m 10 -o /dev/null https://download.pytorch.org/whl/cpu/torch/ 2>/dev/null; then
    wheels="$cache/wheels"
    if ! compgen -G "$wheels/torch-2.13.0+cpu-*.whl" >/dev/null; then
        "$python" -m pip download --quiet --no-deps --dest "$wheels" "torch==2.13.0" >/dev/null 2>&1
    fi
    compgen -G "$wheels/torch-2.13.0+cpu-*.whl" >/dev/null \
        || no_engine "no CPU torch wheel here and PyTorch's index is unreachable"
    port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$python" -m http.server -b 127.0.0.1 -d "$wheels" "$port" >/dev/null 2>&1 &
    server_pid=$!
    torch_args=(--build-arg TORCH_INDEX_URL=https://pypi.org/simple
        --build-arg "PIP_FIND_LINKS=http://127.0.0.1:$port/")
fi

load_or_build postgres:15 "$(tree_hash docker/postgres)-${pg_build_base//[:\/]/_}" \
    --build-arg "BASE_IMAGE=$pg_build_base" docker/postgres
result "image postgres:15 (stand-in)" $?
# The three images of the Dockerfile, one target each; what goes into them is the same context.
context_key="$(tree_hash Dockerfile .dockerignore pyproject.toml README.md digits)-${base_image//[:\/]/_}"
image_ok=0
for target in api ui train; do
    began=$SECONDS
    load_or_build "digits-$target:latest" "$context_key" --target "$target" \
        --build-arg "BASE_IMAGE=$base_image" "${torch_args[@]}" .
    rc=$?
    size="$(docker image inspect "digits-$target:latest" --format '{{.Size}}' 2>/dev/null || echo 0)"
    result "image digits-$target:latest" $rc "$((size / 1024 / 1024)) MiB, $((SECONDS - began)) s"
    [[ $rc -eq 0 ]] || image_ok=1
done
if [[ $image_ok -ne 0 ]]; then finish; fi

# What an image holds that it must not: prints nothing else after the uid when it is lean.
# ARGV: the modules it must not be able to import.
leftovers() { # IMAGE MODULE...
    local image="$1"
    shift
    docker run --rm --network none --entrypoint sh "$image" -c \
        'id -u; command -v gcc cc pip; ls -d /root/.cache/pip /home/digits/.cache/pip 2>/dev/null;
         find /opt/venv \( -name "libcudart*" -o -name "libcublas*" -o -name "libcudnn*" \
             -o -name "libnccl*" -o -name "*providers_cuda*" -o -path "*/site-packages/nvidia" \) |
             head -3
         python -c "
import importlib.util, sys
for name in sys.argv[1:]:
    if importlib.util.find_spec(name): print(name, \"is installed\")
try:
    import torch
    torch.version.cuda and print(\"torch for CUDA\", torch.version.cuda)
except ImportError:
    pass" "$@"' sh "$@" 2>&1
}
lean_result() { # NAME OUTPUT [EXTRA-RC]
    local rc=0
    [[ "$(head -1 <<<"$2")" == 10001 && "$(wc -l <<<"$2")" -eq 1 && "${3:-0}" -eq 0 ]] || rc=1
    result "$1" $rc "$(tail -n +2 <<<"$2" | tr '\n' ' ')"
}
api_size=$(($(docker image inspect digits-api:latest --format '{{.Size}}') / 1024 / 1024))
lean_result "digits-api is lean (uid 10001, no torch, Streamlit, compiler, pip; <= 400 MiB: $api_size)" \
    "$(leftovers digits-api:latest torch streamlit pandas onnx)" $((api_size > 400))
lean_result "digits-ui holds no torch (uid 10001, no compiler, pip)" \
    "$(leftovers digits-ui:latest torch)"
lean_result "digits-train: CPU torch only (uid 10001, no compiler, pip, Streamlit)" \
    "$(leftovers digits-train:latest streamlit)"

# --- the stack -------------------------------------------------------------------------------
# The real compose.yaml (copied, so the generated .env stays out of the checkout) with a
# test-only override that publishes the UI on a free loopback port.
mkdir -p "$work/stack"
cp compose.yaml "$work/stack/compose.yaml"
ui_port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
    echo "POSTGRES_PASSWORD=$(openssl rand -hex 24)"
    echo "DIGITS_ADMIN_TOKEN=$(openssl rand -hex 24)"
    echo "DIGITS_SECRET_KEY=$(openssl rand -hex 32)"
    echo "DIGITS_RATE_LIMIT=0" # the stream checks send faster than one visitor may
    echo "UI_BIND=127.0.0.1:$ui_port"
    echo "DIGITS_LOG_JSON=false"
} >"$work/stack/.env"
cp docker/compose.test.yaml "$work/stack/compose.test.yaml"
# The trainer reads this MNIST folder (docker/compose.test.yaml mounts it).
DIGITS_CT_MNIST="$(cd "${DIGITS_MNIST_DIR:-$repo_root/../shared/mnist}" && pwd)" \
    || no_engine "no MNIST folder (set DIGITS_MNIST_DIR)"
export DIGITS_CT_UI="http://127.0.0.1:$ui_port" DIGITS_CT_WORK="$work" DIGITS_CT_MNIST
check() { # NAME COMMAND...: runs docker/checks.py COMMAND and records its verdict
    local name="$1" out rc began=$SECONDS
    shift
    out="$("$python" "$checks" "$@" 2>"$work/check.err")"
    rc=$?
    [[ $rc -eq 0 ]] || tail -15 "$work/check.err" >&2
    result "$name" $rc "$(tail -1 <<<"$out") ($((SECONDS - began)) s)"
}
export DIGITS_CT_DOCKER="$docker_bin"

compose up -d --no-build >"$work/up.log" 2>&1
check "every service healthy" healthy 240
check "a digit drawn in Chromium is answered, stored in PostgreSQL, corrected" draw
compose stop --timeout 20 >/dev/null 2>&1
compose up -d --no-build >/dev/null 2>&1
check "a restart keeps every row and the active model" restart
compose up -d --no-build --scale api=3 >/dev/null 2>&1
check "--scale api=3: a stream is spread over the replicas and all stored" scale 3
check "PostgreSQL stopped 10 s under a stream: nothing acknowledged lost" outage 10
check "a promotion in one replica is served by all within 10 s" promote 10
check "POST /api/admin/retrain: the trainer promotes, every replica serves it" retrain 1200
if [[ $failed -gt 0 ]]; then
    compose logs --no-color --tail 40 >&2
fi
compose down --volumes --timeout 10 >/dev/null 2>&1

check "docker stack deploy, 3 API replicas: serves and stores" swarm 3
finish
