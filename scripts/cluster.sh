#!/usr/bin/env bash
# A real single-node Kubernetes on this machine, for the cluster stories and by
# hand: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and a
# kubelet, all upstream v1.36.3 built from tests/cluster/go.mod, with pods run
# by upstream's fake CRI (tests/cluster/fakecri) which records every container
# config it receives. Loopback only.
#
#   scripts/cluster.sh up      builds what is missing, starts the bench, prints
#                              KUBECONFIG=<path>, NS_PID=<pid>, NODE=<name> and
#                              the paths of the CRI record and the logs
#   scripts/cluster.sh exec -- CMD...
#                              runs CMD in the bench's mount namespace (where
#                              /var/lib/kubelet/device-plugins is the bench's)
#   scripts/cluster.sh down    stops every process and removes the state
#   scripts/cluster.sh build   only builds the binaries
#
# State lives in $KVGPU_CLUSTER_DIR (default /tmp/kvgpu-cluster). The kubelet's
# fixed directories (/var/lib/kubelet, /var/log) are tmpfs mounts in a private
# mount namespace held by one process, so nothing of the host's is touched and
# they vanish with it. Exits 77 (skipped) with a reason when the machine cannot
# run a kubelet.
set -Eeuo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

k8s_version=v1.36.3
cache=${KVGPU_GO_CACHE:-/var/cache/kvgpu-go}
bin=$cache/bin
state=${KVGPU_CLUSTER_DIR:-/tmp/kvgpu-cluster}
node=${KVGPU_CLUSTER_NODE:-kvgpu-node}
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl fakecri cdicheck)

log() { echo "cluster: $*" >&2; }
skip() { echo "cluster: skipped: $*" >&2; exit 77; }

go_env() {
    export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOMODCACHE=$cache/mod GOCACHE=$cache/build
}

# The Go package of each component.
package_of() {
    case $1 in
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    fakecri) echo ./fakecri ;;
    cdicheck) echo ./cdicheck ;;
    kubectl) echo k8s.io/kubernetes/cmd/kubectl ;;
    *) echo "k8s.io/kubernetes/cmd/$1" ;;
    esac
}

build() {
    local missing=() c
    for c in "${components[@]}"; do [ -x "$bin/$c" ] || missing+=("$c"); done
    # The fake CRI and the CDI check (the DRA stories') are ours: rebuild
    # them when their source is newer than the binary.
    for c in fakecri cdicheck; do
        if [ -x "$bin/$c" ] && [ "$root/tests/cluster/$c/main.go" -nt "$bin/$c" ]; then
            missing+=("$c")
        fi
    done
    ((${#missing[@]})) || return 0
    # Where the machine's Go lives when the PATH does not name it.
    command -v go >/dev/null || [ ! -x /usr/local/go/bin/go ] || PATH=$PATH:/usr/local/go/bin
    command -v go >/dev/null || skip "no Go toolchain to build ${missing[*]}"
    go_env
    mkdir -p "$bin/tmp"
    log "building ${missing[*]} into $bin (cold: about 9 minutes on 2 idle cores; then only links)"
    local start=$SECONDS pkgs=()
    for c in "${missing[@]}"; do pkgs+=("$(package_of "$c")"); done
    # One go build for all: the packages they share compile once, in parallel.
    # Into a scratch directory first, so an interrupted build leaves no binary
    # that looks complete.
    (
        cd "$root/tests/cluster"
        go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version \
            -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36" \
            -o "$bin/tmp/" "${pkgs[@]}"
    )
    for c in "${missing[@]}"; do
        # etcd's main package is go.etcd.io/etcd/server/v3; go names the binary
        # after the path without its major version suffix: "server".
        local out=$c
        [ "$c" = etcd ] && out=server
        mv -f "$bin/tmp/$out" "$bin/$c"
    done
    log "built in $((SECONDS - start)) s"
}

prerequisites() {
    [ "$(id -u)" = 0 ] || skip "needs root (mount namespace, /var/lib/kubelet)"
    # CAP_SYS_ADMIN is bit 21 of the effective set.
    local capeff
    capeff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
    (((16#$capeff >> 21) & 1)) || skip "needs CAP_SYS_ADMIN (mount namespace, tmpfs)"
    command -v unshare >/dev/null && command -v nsenter >/dev/null || skip "needs unshare and nsenter (util-linux)"
    command -v openssl >/dev/null || skip "needs openssl for the bench's certificates"
    command -v curl >/dev/null || skip "needs curl for health checks"
    # The kubelet sets vm.overcommit_memory and kernel.panic* at start.
    [ -w /proc/sys/vm/overcommit_memory ] || skip "/proc/sys is read-only here; the kubelet writes kernel tunables"
    [ -r /dev/kmsg ] || skip "no readable /dev/kmsg; the kubelet's OOM watcher needs it"
    [ -d /sys/fs/cgroup ] || skip "no /sys/fs/cgroup"
}

# free_ports N: N distinct free TCP ports on 127.0.0.1.
free_ports() {
    /usr/bin/python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND (a cheap local check) until
# it succeeds; on timeout prints the logs' tails and fails.
wait_until() {
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS > deadline)); then
            log "timed out waiting for $what"
            tails >&2
            return 1
        fi
        # The component last started has exited: no use waiting.
        if [ -n "${last_started:-}" ] && ! alive "$last_started"; then
            log "$what: the process exited"
            tails >&2
            return 1
        fi
        sleep 0.1
    done
}

tails() {
    for f in "$state"/logs/*.log; do
        [ -f "$f" ] || continue
        echo "--- tail of $f"
        tail -n 25 "$f"
    done
}

kubeconfig() { # kubeconfig FILE USER TOKEN
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority: $state/pki/ca.crt
users:
- name: $2
  user:
    token: $3
contexts:
- name: bench
  context: {cluster: bench, user: $2}
current-context: bench
EOF
}

certificates() {
    local pki=$state/pki
    mkdir -p "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kvgpu-bench-ca \
        -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver \
        -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >"$pki/san.ext"
    openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 2 -extfile "$pki/san.ext" -out "$pki/apiserver.crt" 2>/dev/null
    # The service-account token signing key.
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

# start NAME COMMAND...: starts a component in the bench's mount namespace, in
# an empty working directory of its own (the kubelet deletes files by a glob
# relative to it when a runtime reports no log path).
start() {
    local name=$1
    shift
    mkdir -p "$state/run/$name"
    (cd "$state/run/$name" && exec nsenter -t "$(cat "$state/ns.pid")" -m -- "$@" \
        </dev/null >"$state/logs/$name.log" 2>&1) &
    last_started=$!
    echo $! >"$state/pids/$name"
}

up() {
    prerequisites
    build
    if [ -e "$state/ns.pid" ]; then
        log "$state holds a bench already; run '$0 down' first"
        exit 1
    fi
    mkdir -p "$state"/{logs,pids,run}
    trap 'trap - ERR; log "start failed; tearing down"; down; exit 1' ERR

    read -r etcd_port etcd_peer_port apiserver_port cm_port sched_port kubelet_port kubelet_healthz_port \
        <<<"$(free_ports 7)"
    certificates
    local admin_token cm_token sched_token kubelet_token
    admin_token=$(openssl rand -hex 16)
    cm_token=$(openssl rand -hex 16)
    sched_token=$(openssl rand -hex 16)
    kubelet_token=$(openssl rand -hex 16)
    cat >"$state/pki/tokens.csv" <<EOF
$admin_token,kvgpu-admin,kvgpu-admin,"system:masters"
$cm_token,system:kube-controller-manager,system:kube-controller-manager
$sched_token,system:kube-scheduler,system:kube-scheduler
$kubelet_token,system:node:$node,system:node:$node,"system:nodes"
EOF
    kubeconfig "$state/admin.kubeconfig" kvgpu-admin "$admin_token"
    kubeconfig "$state/controller-manager.kubeconfig" system:kube-controller-manager "$cm_token"
    kubeconfig "$state/scheduler.kubeconfig" system:kube-scheduler "$sched_token"
    kubeconfig "$state/kubelet.kubeconfig" "system:node:$node" "$kubelet_token"

    # The mount namespace: one process holds it; everything else joins it.
    # Mount points on the host stay empty directories: the kubelet's, and the
    # DaemonSet's hostPath for the plugin's state (story 7 creates its pod).
    mkdir -p /var/lib/kubelet /var/lib/kubevirt-gpu-device-plugin
    unshare --mount --propagation private -- /bin/sh -c '
        mount -t tmpfs -o mode=0755 kvgpu-kubelet /var/lib/kubelet &&
        mount -t tmpfs -o mode=0755 kvgpu-plugin-state /var/lib/kubevirt-gpu-device-plugin &&
        mount -t tmpfs -o mode=0755 kvgpu-log /var/log &&
        mkdir /var/lib/kubelet/device-plugins && exec sleep infinity' \
        </dev/null >"$state/logs/namespace.log" 2>&1 &
    echo $! >"$state/ns.pid"
    wait_until 10 "the mount namespace" \
        nsenter -t "$(cat "$state/ns.pid")" -m -- test -d /var/lib/kubelet/device-plugins

    start etcd "$bin/etcd" --name bench --data-dir "$state/etcd" --unsafe-no-fsync \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
        --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
        --initial-cluster "bench=http://127.0.0.1:$etcd_peer_port"
    wait_until 30 "etcd" curl -sf "http://127.0.0.1:$etcd_port/health"

    start kube-apiserver "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$apiserver_port" \
        --tls-cert-file "$state/pki/apiserver.crt" --tls-private-key-file "$state/pki/apiserver.key" \
        --client-ca-file "$state/pki/ca.crt" --token-auth-file "$state/pki/tokens.csv" \
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
        --service-account-issuer https://kubernetes.default.svc \
        --service-account-key-file "$state/pki/sa.pub" \
        --service-account-signing-key-file "$state/pki/sa.key" \
        --service-cluster-ip-range 10.0.0.0/24 --endpoint-reconciler-type none \
        --allow-privileged=true --profiling=false
    wait_until 60 "kube-apiserver" curl -sf --cacert "$state/pki/ca.crt" \
        -H "Authorization: Bearer $admin_token" "https://127.0.0.1:$apiserver_port/readyz"

    start kube-controller-manager "$bin/kube-controller-manager" \
        --kubeconfig "$state/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$state/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$state/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$cm_port" --leader-elect=false \
        --use-service-account-credentials=true \
        --service-account-private-key-file "$state/pki/sa.key" --root-ca-file "$state/pki/ca.crt" \
        --controllers '*,-bootstrapsigner,-tokencleaner,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller'
    start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$state/scheduler.kubeconfig" \
        --authentication-kubeconfig "$state/scheduler.kubeconfig" \
        --authorization-kubeconfig "$state/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false

    start fakecri "$bin/fakecri" --listen "$state/cri.sock" --record "$state/containers.jsonl"
    wait_until 10 "the fake CRI" test -S "$state/cri.sock"

    cat >"$state/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$state/cri.sock
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $state/pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
nodeStatusUpdateFrequency: 1s
nodeStatusReportFrequency: 1s
syncFrequency: 2s
evictionHard: {memory.available: "0%", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
registerNode: true
EOF
    start_kubelet

    wait_until 60 "the node object" kubectl get "node/$node"
    kubectl wait --for=condition=Ready "node/$node" --timeout=60s >/dev/null || { tails >&2; false; }
    # Pods are admitted only once their namespace's default service account exists.
    wait_until 60 "the default service account" kubectl get serviceaccount default
    trap - ERR

    echo "KUBECONFIG=$state/admin.kubeconfig"
    echo "NS_PID=$(cat "$state/ns.pid")"
    echo "NODE=$node"
    echo "CRI_RECORD=$state/containers.jsonl"
    echo "LOGS=$state/logs"
}

start_kubelet() {
    start kubelet "$bin/kubelet" --config "$state/kubelet.yaml" --kubeconfig "$state/kubelet.kubeconfig" \
        --hostname-override "$node" --v "${KVGPU_KUBELET_V:-4}"
    wait_until 60 "the kubelet's healthz" curl -sf \
        "http://127.0.0.1:$(awk '/^healthzPort:/ {print $2}' "$state/kubelet.yaml")/healthz"
}

kubectl() { "$bin/kubectl" --kubeconfig "$state/admin.kubeconfig" "$@"; }

# alive PID: the process exists and is not a zombie waiting for its parent.
alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "${st:0:1}" != Z ]
}

# stop NAME...: SIGTERM to each, then SIGKILL to whatever is left after 10 s;
# returns when all are gone.
stop() {
    local pids=() name pid
    for name in "$@"; do
        [ -f "$state/pids/$name" ] || continue
        pid=$(cat "$state/pids/$name")
        kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
        rm -f "$state/pids/$name"
    done
    local deadline=$((SECONDS + 10))
    for pid in "${pids[@]}"; do
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
        while alive "$pid"; do sleep 0.05; done
    done
}

down() {
    [ -d "$state" ] || return 0
    # The bench in reverse order of start, then whatever else is still in
    # its namespace.
    stop kubelet fakecri kube-scheduler kube-controller-manager
    stop kube-apiserver
    stop etcd
    if [ -f "$state/ns.pid" ]; then
        local ns mnt p
        ns=$(cat "$state/ns.pid")
        mnt=$(readlink "/proc/$ns/ns/mnt" 2>/dev/null || true)
        # Anything else still in the namespace (a plugin a test left behind).
        if [ -n "$mnt" ] && [ "$mnt" != "$(readlink /proc/self/ns/mnt)" ]; then
            for p in /proc/[0-9]*; do
                [ "${p#/proc/}" = "$ns" ] && continue
                [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$mnt" ] && kill -KILL "${p#/proc/}" 2>/dev/null || true
            done
        fi
        kill -KILL "$ns" 2>/dev/null || true
        while alive "$ns"; do sleep 0.05; done
    fi
    rm -rf "$state"
}

case "${1:-}" in
up) up ;;
down) down ;;
build) build ;;
restart-kubelet)
    # Stops the kubelet and starts it again with the same configuration.
    stop kubelet
    start_kubelet
    ;;
stop-kubelet) stop kubelet ;;
start-kubelet) start_kubelet ;;
pause-apiserver | resume-apiserver)
    # An API server that is there but answers nothing (SIGSTOP: connections
    # are accepted and hang), and its return (SIGCONT).
    [ "$1" = pause-apiserver ] && signal=STOP || signal=CONT
    kill -"$signal" "$(cat "$state/pids/kube-apiserver")"
    ;;
exec)
    shift
    [ "${1:-}" = "--" ] && shift
    exec nsenter -t "$(cat "$state/ns.pid")" -m -- "$@"
    ;;
*)
    echo "usage: $0 up|down|build|exec -- CMD...|restart-kubelet|stop-kubelet|start-kubelet|pause-apiserver|resume-apiserver" >&2
    exit 2
    ;;
esac
