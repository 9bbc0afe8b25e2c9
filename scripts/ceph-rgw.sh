#!/usr/bin/env bash
# A throwaway single-node Ceph RADOS gateway (S3) for the tests: one monitor, one OSD
# on memstore (objects in RAM), one radosgw, everything under DIR. Never for real data.
#
#   scripts/ceph-rgw.sh start DIR PORT   idempotent; returns once an S3 PUT has worked
#   scripts/ceph-rgw.sh stop DIR         idempotent; kills the daemons, removes DIR
#
# Needs the Debian 12 packages ceph-mon ceph-osd radosgw ceph-common (make system-deps).
# Measured facts and pitfalls: see the comments below (Ceph 16.2, "pacific").
set -euo pipefail

ACCESS_KEY=${RGW_ACCESS_KEY:-berkastestaccesskey}
SECRET_KEY=${RGW_SECRET_KEY:-berkastestsecretkey0000000000000000000000}
READY_TIMEOUT=${RGW_READY_TIMEOUT:-120}

usage() {
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
}

die() {
    echo "ceph-rgw: $*" >&2
    for log in "$DIR"/log/*.log; do
        [ -f "$log" ] && { echo "--- $log (last 20 lines)" >&2; tail -n 20 "$log" >&2; }
    done
    exit 1
}

ceph_() { ceph --conf "$DIR/ceph.conf" --connect-timeout 10 "$@"; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# An anonymous S3 ListBuckets (200 with an empty list): the gateway reached RADOS. The
# first PUT is slower (pools are created lazily); tests/support/rgw.py warms that up.
s3_ready() {
    # python3 rather than curl, which a fresh Debian machine may lack.
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' \
        "http://127.0.0.1:$PORT/" 2>/dev/null
}

write_conf() {
    cat >"$DIR/ceph.conf" <<EOF
[global]
fsid = $(cat "$DIR/fsid")
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd_pool_default_pg_autoscale_mode = off
mon allow pool size one = true
mon allow pool delete = true
osd crush chooseleaf type = 0
run dir = $DIR/run
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
keyring = $DIR/keyring
mon data = $DIR/mon/\$cluster-\$id
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 1073741824
osd max object name len = 256
osd max object namespace len = 64
mon warn on pool no redundancy = false

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw dns name = localhost
rgw data = $DIR/rgw
# With auth=none radosgw 16 hangs 300 s ("get_initial_auth_request returned -13")
# unless it speaks crc to the monitor.
ms mon client mode = crc
EOF
}

start() {
    mkdir -p "$DIR"/{run,log,mon,osd,rgw}
    if alive "$DIR/run/client.rgw.a.pid" && s3_ready; then
        echo "ceph-rgw: already running on 127.0.0.1:$PORT"
        return
    fi
    [ -f "$DIR/fsid" ] || python3 -c 'import uuid; print(uuid.uuid4())' >"$DIR/fsid"
    MON_PORT=$(cat "$DIR/mon-port" 2>/dev/null || python3 -c '
import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "$MON_PORT" >"$DIR/mon-port"
    write_conf
    local conf=(--conf "$DIR/ceph.conf")

    if [ ! -f "$DIR/mon/ceph-a/done" ]; then
        ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
        ceph-authtool "$DIR/keyring" --gen-key -n client.admin --cap mon 'allow *' \
            --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
        monmaptool --create --fsid "$(cat "$DIR/fsid")" --addv a "[v2:127.0.0.1:$MON_PORT]" \
            "$DIR/monmap" >/dev/null
        ceph-mon "${conf[@]}" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring"
        touch "$DIR/mon/ceph-a/done"
    fi
    alive "$DIR/run/mon.a.pid" || ceph-mon "${conf[@]}" -i a
    ceph_ status >/dev/null 2>&1 || die "the monitor did not answer"

    if [ ! -f "$DIR/osd-id" ]; then
        local id
        id=$(ceph_ osd create)
        mkdir -p "$DIR/osd/ceph-$id"
        ceph-osd "${conf[@]}" -i "$id" --mkfs >/dev/null 2>&1 || die "ceph-osd --mkfs failed"
        ceph_ osd crush add-bucket node host >/dev/null 2>&1
        ceph_ osd crush move node root=default >/dev/null 2>&1
        ceph_ osd crush add "osd.$id" 1.0 host=node >/dev/null 2>&1
        echo "$id" >"$DIR/osd-id"
    fi
    local osd
    osd=$(cat "$DIR/osd-id")
    # memstore keeps objects in RAM: a restarted OSD has lost them, so it is made afresh.
    if ! alive "$DIR/run/osd.$osd.pid"; then
        ceph-osd "${conf[@]}" -i "$osd" --mkfs >/dev/null 2>&1 || true
        ceph-osd "${conf[@]}" -i "$osd" 2>/dev/null
    fi

    alive "$DIR/run/client.rgw.a.pid" || radosgw "${conf[@]}" -n client.rgw.a
    local deadline=$((SECONDS + READY_TIMEOUT))
    until s3_ready; do
        [ $SECONDS -lt $deadline ] || die "radosgw did not answer on 127.0.0.1:$PORT in ${READY_TIMEOUT}s"
        alive "$DIR/run/client.rgw.a.pid" || die "radosgw exited"
        sleep 0.5
    done
    if ! radosgw-admin "${conf[@]}" user info --uid=berkas-test >/dev/null 2>&1; then
        radosgw-admin "${conf[@]}" user create --uid=berkas-test --display-name=berkas-test \
            --access-key="$ACCESS_KEY" --secret="$SECRET_KEY" >/dev/null \
            || die "radosgw-admin user create failed"
    fi
    echo "ceph-rgw: ready on http://127.0.0.1:$PORT (access key $ACCESS_KEY)"
}

stop() {
    [ -d "$DIR" ] || return 0
    local pids=()
    for pidfile in "$DIR"/run/*.pid; do
        [ -f "$pidfile" ] && pids+=("$(cat "$pidfile")")
    done
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local left=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
        [ $left = 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$DIR"
}

[ $# -ge 2 ] || usage
COMMAND=$1
DIR=$(realpath -m "$2")
case $COMMAND in
    start)
        [ $# -eq 3 ] || usage
        PORT=$3
        start
        ;;
    stop) stop ;;
    *) usage ;;
esac
