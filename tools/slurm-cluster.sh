#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the tests and for trying
# profiles/slurm: munge, MariaDB, slurmdbd (accounting, which `sacct` and so the Snakemake
# SLURM executor need), slurmctld and slurmd, started by hand (package scripts do not start
# services in containers and sandboxes).
#
#   tools/slurm-cluster.sh install   # apt packages (root or sudo)
#   tools/slurm-cluster.sh start     # write the configs, start every daemon, wait until a job runs
#   tools/slurm-cluster.sh status    # sinfo and the daemons' pids
#   tools/slurm-cluster.sh stop      # stop the daemons this script started
#
# `start` starts only the daemons not already running and records each one's PID file in
# /run/fieldphot-slurm/; `stop` stops exactly those processes, so a munge or MariaDB you
# already ran is left alone.
#
# Facts this script works around: munged needs /run/munge; SLURM 22.05 rejects
# AccountingStorageEnforce=none (so the key is left out); without slurmdbd, sacct sees no jobs
# and the Snakemake executor never learns they finished.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
CLUSTER=fieldphot
HOST=$(hostname -s)
ETC=/etc/slurm
LOGS=/var/log/slurm
STATE=/run/fieldphot-slurm

install() {
    if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null \
        || ! command -v mariadbd >/dev/null; then
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            slurm-wlm munge slurmdbd mariadb-server >/dev/null
    fi
}

write_configs() {
    local cpus mem
    cpus=$(nproc)
    mem=$(($(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024))
    $SUDO mkdir -p "$ETC" "$LOGS" /var/spool/slurmctld /var/spool/slurmd /run/munge
    $SUDO tee "$ETC/slurm.conf" >/dev/null <<EOF
# Written by tools/slurm-cluster.sh: one node, this machine.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/linux
# Poll job memory every second and kill a job that exceeds what it asked for (as clusters
# with cgroups do), so a job's mem_mb is real.
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
JobCompType=jobcomp/none
MinJobAge=600
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    $SUDO tee "$ETC/slurmdbd.conf" >/dev/null <<EOF
# Written by tools/slurm-cluster.sh: accounting in the local MariaDB.
AuthType=auth/munge
DbdHost=$HOST
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=/run/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
EOF
    $SUDO chmod 600 "$ETC/slurmdbd.conf"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2
    shift 2
    for _ in $(seq "$limit"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    echo "slurm-cluster: $what did not come up in ${limit}s" >&2
    return 1
}

started() {  # started DAEMON PIDFILE: this script started DAEMON, whose pid is in PIDFILE
    $SUDO mkdir -p "$STATE"
    echo "$2" | $SUDO tee "$STATE/$1" >/dev/null
}

start() {
    write_configs
    # munge: its key, its socket folder, run as the munge user.
    [ -s /etc/munge/munge.key ] || $SUDO mungekey --create --force 2>/dev/null \
        || $SUDO /usr/sbin/create-munge-key -f
    $SUDO chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    $SUDO chmod 0700 /etc/munge
    if ! pgrep -x munged >/dev/null; then
        $SUDO runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
        started munged /run/munge/munged.pid
    fi
    wait_for 20 munged bash -c 'munge -n | unmunge'
    # MariaDB for slurmdbd.
    if ! pgrep -x mariadbd >/dev/null && ! pgrep -x mysqld >/dev/null; then
        $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld
        [ -d /var/lib/mysql/mysql ] || $SUDO mariadb-install-db --user=mysql >/dev/null
        $SUDO runuser -u mysql -- mariadbd --bind-address=127.0.0.1 \
            --pid-file=/run/mysqld/fieldphot.pid >"/tmp/mariadb.log" 2>&1 &
        started mariadbd /run/mysqld/fieldphot.pid
    fi
    wait_for 60 MariaDB $SUDO mariadb -e "select 1"
    $SUDO mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    pgrep -x slurmdbd >/dev/null || { $SUDO slurmdbd && started slurmdbd /run/slurmdbd.pid; }
    wait_for 60 slurmdbd $SUDO sacctmgr -n list cluster
    $SUDO sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
    pgrep -x slurmctld >/dev/null || { $SUDO slurmctld && started slurmctld /run/slurmctld.pid; }
    pgrep -x slurmd >/dev/null || { $SUDO slurmd && started slurmd /run/slurmd.pid; }
    wait_for 60 "the node" bash -c "sinfo -h -o %T | grep -qE '^(idle|mixed|allocated)'"
    wait_for 60 "a test job" srun -N1 -n1 -t 1 true
    echo "slurm-cluster: up ($(sinfo -h -o '%P %D nodes %c CPUs %m MB'))"
}

stop() {  # the daemons `start` started, last started first, each by the pid it recorded
    local d pidfile pid
    for d in slurmd slurmctld slurmdbd mariadbd munged; do
        [ -f "$STATE/$d" ] || continue
        pidfile=$(cat "$STATE/$d")
        pid=$(cat "$pidfile" 2>/dev/null || true)
        # the pid must still be that daemon (a pid file can outlive its process)
        if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$d" ]; then
            $SUDO kill "$pid" 2>/dev/null || true
            for _ in $(seq 30); do
                [ -e "/proc/$pid" ] || break
                sleep 1
            done
        fi
        $SUDO rm -f "$STATE/$d"
    done
    echo "slurm-cluster: stopped"
}

status() {
    for d in munged mariadbd slurmdbd slurmctld slurmd; do
        printf '%-10s %s\n' "$d" "$(pgrep -x "$d" | tr '\n' ' ' || true)"
    done
    sinfo 2>&1 || true
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
