#!/usr/bin/env bash
# Copied from the project's shared recipes (shared/ is not part of a clone); behaviour unchanged.
# Single-node Slurm smoke test for CI (Debian 12, root, no systemd needed).
# Installs Debian's slurm-wlm, starts munged/slurmctld/slurmd as plain background
# processes, runs a 4-task job array with `sbatch --wait`, checks the outputs,
# then stops exactly the daemons it started (by PID).
#
# Usage: slurm-single-node.sh                 smoke test (4 tasks echo their shard)
#        ARRAY_N=4 ARRAY_CMD='xensim sweep ... --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT --out "$OUT"/shard_$SLURM_ARRAY_TASK_ID' \
#          slurm-single-node.sh               run your own array body (run from the folder it needs; exits with the worst task's code)
set -euo pipefail
AUTH="${AUTH:-munge}"        # munge (default, what real clusters use) | none (skip munged)

# --- 1. install (keep postinst scripts from starting daemons) ------------------
export DEBIAN_FRONTEND=noninteractive
MADE_POLICY=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; MADE_POLICY=1
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurm-wlm >/dev/null   # pulls slurmctld slurmd slurm-client munge
[ "$MADE_POLICY" = 0 ] || rm -f /usr/sbin/policy-rc.d

# --- 2. config (hostname-independent: everything on 127.0.0.1) -----------------
DIR="$(mktemp -d)"
export SLURM_CONF="$DIR/slurm.conf"      # read by slurmctld, slurmd, sbatch, sinfo
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/work"
HW="$(slurmd -C | head -1)"              # "NodeName=<host> CPUs=2 ... RealMemory=NNN"
CPUS="$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$HW")"
MEM="$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$HW")"

cat > "$SLURM_CONF" <<CONF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/${AUTH}
CredType=cred/${AUTH}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
NodeName=node0 NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# --- 3. daemons ---------------------------------------------------------------
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
ms() { echo $(( $(date +%s%N) / 1000000 )); }
T0=$(ms)
if [ "$AUTH" = munge ] && ! munge -n >/dev/null 2>&1; then
  install -d -o munge -g munge -m 0755 /run/munge      # systemd's RuntimeDirectory= normally does this
  # munged must run as the key owner (munge); setpriv execs, so $! is munged itself
  setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground 2>"$DIR/munged.log" &
  PIDS+=($!)
  for i in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null
fi
/usr/sbin/slurmctld -D -i 2>"$DIR/slurmctld.stderr" &  PIDS+=($!)   # -D foreground, -i ignore saved state
/usr/sbin/slurmd -D -N node0 2>"$DIR/slurmd.stderr" &  PIDS+=($!)   # -N: node name independent of hostname
st=""
for i in $(seq 300); do
  st="$(sinfo -h -n node0 -o %t 2>/dev/null || true)"; [ "$st" = idle ] && break; sleep 0.1
done
T1=$(ms); echo "node idle after $((T1-T0)) ms (state: ${st:-none})"
[ "$st" = idle ] || { tail -n 30 "$DIR"/*.log; exit 1; }

# --- 4. job array -------------------------------------------------------------
if [ -n "${ARRAY_CMD:-}" ]; then
  N="${ARRAY_N:-4}"
  sbatch --array=0-$((N-1)) --wait -o "$DIR/work/slurm-%A_%a.out" --wrap "$ARRAY_CMD"
  T2=$(ms); echo "OK: $N array tasks; daemon start -> done $((T2-T0)) ms"
  exit 0
fi
cd "$DIR/work"
sbatch --array=0-3 --wait -o 'slurm-%A_%a.out' \
  --wrap 'echo shard $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT > out_$SLURM_ARRAY_TASK_ID.txt'
T2=$(ms)
for i in 0 1 2 3; do
  [ "$(cat "out_$i.txt")" = "shard $i of 4" ] || { echo "bad out_$i.txt"; exit 1; }
done
echo "OK: 4 array tasks; sbatch --wait took $((T2-T1)) ms; daemon start -> done $((T2-T0)) ms"
