#!/usr/bin/env bash
# A single-node Slurm cluster on this host, for tests: munge + slurmctld + slurmd with all
# state, spool, sockets and logs under one folder.
#
#   eval "$(scripts/slurm-local.sh start DIR)"   # prints `export SLURM_CONF=...`
#   scripts/slurm-local.sh stop DIR              # stops the daemons it started, by pid
#
# Needs Debian's slurmctld, slurmd, slurm-client and munge (`install` installs them).
set -euo pipefail

cmd=${1:?usage: slurm-local.sh install|start DIR|stop DIR}
dir=${2:-}

case "$cmd" in
install)
    if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
    fi
    ;;
start)
    : "${dir:?start needs a folder}"
    mkdir -p "$dir"/{state,spool,log}
    dir=$(cd "$dir" && pwd)
    host=$(hostname -s)
    dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
    chmod 0400 "$dir/munge.key"
    munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" \
        --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge.seed"
    cat >"$dir/slurm.conf" <<CONF
ClusterName=pfode
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=${PFODE_SLURMCTLD_PORT:-6817}
SlurmdPort=${PFODE_SLURMD_PORT:-6818}
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF"
    for _ in $(seq 1 100); do
        if sinfo -h -o %T 2>/dev/null | grep -qE '^idle'; then
            echo "export SLURM_CONF=$SLURM_CONF"
            exit 0
        fi
        sleep 0.2
    done
    echo "slurm-local: the node did not come up; logs in $dir/log" >&2
    "$0" stop "$dir" || true
    exit 1
    ;;
stop)
    : "${dir:?stop needs a folder}"
    for d in slurmd slurmctld munged; do
        if [ -f "$dir/$d.pid" ]; then
            kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
        fi
    done
    ;;
*)
    echo "usage: slurm-local.sh install|start DIR|stop DIR" >&2
    exit 2
    ;;
esac
