#!/usr/bin/env bash
# Bring up a one-node Slurm cluster with accounting (slurmdbd on MariaDB) on this Debian machine, so
# the Slurm tests talk to the real sbatch, squeue, sacct and scancel. Needs root and apt.
# Idempotent: when the cluster already answers, it only checks it. Exit 0 = cluster ready.
set -euo pipefail

log() { echo "cluster-up: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then log "needs root (installs packages, starts daemons)"; exit 1; fi
if ! command -v apt-get >/dev/null; then log "needs a Debian-like system with apt-get"; exit 1; fi

HOST=$(hostname -s)
CLUSTER=torc
ACCOUNT=torc_test

cluster_ok() {
    timeout 10 scontrol ping 2>/dev/null | grep -q UP &&
    timeout 10 sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)' &&
    timeout 10 sacctmgr -n show assoc user=root account=$ACCOUNT format=account 2>/dev/null | grep -q $ACCOUNT
}
if command -v scontrol >/dev/null && cluster_ok; then log "cluster already up"; exit 0; fi

need=()
for p in slurmctld slurmd slurm-client slurmdbd munge mariadb-server; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- munge ----------------------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged --force
fi

# --- MariaDB for slurmdbd -------------------------------------------------------------------
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if ! pgrep -x mariadbd >/dev/null; then
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
for _ in $(seq 60); do mariadb -u root -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.5; done
mariadb -u root <<'SQL'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

# --- configuration --------------------------------------------------------------------------
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
chown slurm:slurm /var/spool/slurmctld /var/log/slurm /run/slurm
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
CONF
chown slurm:slurm /etc/slurm/slurmdbd.conf && chmod 600 /etc/slurm/slurmdbd.conf
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, the first job takes all the node's memory and the rest queue.
DefMemPerCPU=1024
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
KillWait=5
MinJobAge=30
ReturnToService=2
SchedulerParameters=sched_interval=2
InactiveLimit=0
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

# --- daemons --------------------------------------------------------------------------------
if ! pgrep -x slurmdbd >/dev/null; then /usr/sbin/slurmdbd; fi
for _ in $(seq 60); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.5; done
sacctmgr -i add cluster $CLUSTER >/dev/null 2>&1 || true
sacctmgr -i add account $ACCOUNT cluster=$CLUSTER description=torc-tests organization=torc >/dev/null 2>&1 || true
sacctmgr -i add user root account=$ACCOUNT cluster=$CLUSTER >/dev/null 2>&1 || true
if ! pgrep -x slurmctld >/dev/null; then /usr/sbin/slurmctld; else scontrol reconfigure || true; fi
if ! pgrep -x slurmd >/dev/null; then /usr/sbin/slurmd; fi
for _ in $(seq 60); do cluster_ok && break; sleep 0.5; done
scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
if cluster_ok; then
    log "cluster '$CLUSTER' up: node $HOST, $CPUS CPUs, ${MEM_MB} MB, account $ACCOUNT"
    exit 0
fi
log "cluster did not come up; see /var/log/slurm/*.log"
exit 1
