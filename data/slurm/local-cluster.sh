#!/usr/bin/env bash
# A throw-away single-node SLURM cluster (munged + slurmctld + slurmd from Debian's slurm-wlm and
# munge packages) living entirely in DIR, for testing the array scripts on one machine:
#   data/slurm/local-cluster.sh start DIR   # prints `export SLURM_CONF=DIR/slurm.conf`
#   data/slurm/local-cluster.sh stop DIR    # stops exactly the daemons it started (PID files)
# Needs root (slurmd runs jobs as their submitter) and a munge key (/etc/munge/munge.key, created
# by the munge package, or set MUNGE_KEY). Ports: SLURM_TEST_PORT (default 16817) and the next.
set -euo pipefail
cmd=${1:?usage: $0 start|stop DIR}
DIR=$(realpath -m "${2:?usage: $0 start|stop DIR}")
stop() {
  for p in slurmd slurmctld munged; do
    if [ -f "$DIR/$p.pid" ]; then
      pid=$(cat "$DIR/$p.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f "$DIR/$p.pid"
    fi
  done
}
if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/munge"
chmod 700 "$DIR/munge"
host=$(hostname -s)
port=${SLURM_TEST_PORT:-16817}
cp "${MUNGE_KEY:-/etc/munge/munge.key}" "$DIR/munge/munge.key"
chmod 600 "$DIR/munge/munge.key"
munged --force --socket="$DIR/munge/socket" --key-file="$DIR/munge/munge.key" \
  --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munge/seed"
cat > "$DIR/slurm.conf" <<CONF
ClusterName=diffexp-local
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -c -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 0.2
done
echo "SLURM did not come up; logs in $DIR" >&2
stop
exit 1
