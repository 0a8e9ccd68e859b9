#!/usr/bin/env bash
# The grid under Slurm: a four-node cluster on this machine (one slurmctld, four slurmd sharing
# localhost on their own ports, a private munged), the sites enrolled with deploy/slurm/enrol.sh,
# and deploy/slurm/grid.sbatch submitted with `sbatch --wait`: the orchestrator and three sites
# start as one job, the run finishes, the sites leave, and the job's exit status is 0. The test
# starts and stops its own daemons; it needs root (slurmd) and Debian's slurmd, slurmctld,
# slurm-client and munge (the test command installs them).
#
# usage: slurm_test.sh GNG_BINARY SOURCE_DIR
set -euo pipefail
gng=$1 src=$2
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: slurmd needs root (run the tests as root, as CI does)"
  exit 77
fi
for t in slurmctld slurmd sbatch sinfo munged mungekey; do command -v "$t" >/dev/null || fail "$t is missing (apt-get install slurmd slurmctld slurm-client munge)"; done

dir=$(mktemp -d /tmp/gng-slurm.XXXXXX)
chmod 700 "$dir"
pids=()
cleanup() {
  scancel --quiet --full --signal=KILL -u root 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# Free ports: the controller's, four slurmd ones (consecutive), the hub's.
ctld_port=$(free_port)
slurmd_port=$(free_port)
for k in 1 2 3; do (exec 3<>"/dev/tcp/127.0.0.1/$((slurmd_port + k))") 2>/dev/null && slurmd_port=$(free_port); done
hub_port=$(free_port)
kme_port=$(free_port)  # the KMEs: kme_port + task
for k in 1 2 3; do (exec 3<>"/dev/tcp/127.0.0.1/$((kme_port + k))") 2>/dev/null && fail "port $((kme_port + k)) is taken"; done

mungekey --create --keyfile="$dir/munge.key" 2>/dev/null || dd if=/dev/urandom of="$dir/munge.key" bs=1 count=128 2>/dev/null
chmod 600 "$dir/munge.key"
munged --force --socket="$dir/munge.sock" --key-file="$dir/munge.key" --pid-file="$dir/munged.pid" \
  --log-file="$dir/munged.log" --seed-file="$dir/munged.seed"
pids+=("$(cat "$dir/munged.pid")")

host=$(hostname -s)
export SLURM_CONF=$dir/slurm.conf
cat > "$SLURM_CONF" <<CONF
ClusterName=gngtest
SlurmctldHost=$host
SlurmctldPort=$ctld_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.sock
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=n[0-3] NodeHostname=$host NodeAddr=127.0.0.1 Port=[$slurmd_port-$((slurmd_port + 3))] CPUs=1 RealMemory=1000 State=UNKNOWN
PartitionName=grid Nodes=n[0-3] Default=YES MaxTime=INFINITE State=UP
CONF
mkdir -p "$dir/state"
slurmctld -D -i >"$dir/slurmctld.out" 2>&1 &
pids+=($!)
for k in 0 1 2 3; do
  slurmd -D -N "n$k" >"$dir/slurmd-n$k.out" 2>&1 &
  pids+=($!)
done
for _ in $(seq 120); do
  [ "$(sinfo -h -N -o '%t' 2>/dev/null | grep -c idle)" = 4 ] && break
  sleep 0.5
done
[ "$(sinfo -h -N -o '%t' 2>/dev/null | grep -c idle)" = 4 ] || { show_logs "$dir/job.out"; sinfo -N 2>&1; fail "the four slurmd did not come up"; }

# The grid: the operator's CA, three enrolled sites with small shards, a tiny run.
work=$dir/work
GNG=$gng bash "$src/deploy/slurm/enrol.sh" "$work" site-1 site-2 site-3
for k in 1 2 3; do
  printf 'shard: {index: %d, of: 3}\ntrain_limit: 1500\nvalidation: 100\n' $((k - 1)) > "$work/sites/site-$k/site.yaml"
done
cp "$src/tests/lifecycle/data/tiny.yaml" "$src/tests/lifecycle/data/tiny-policy.yaml" "$work/"
printf 'pki: ca\nnodes: {min: 3, wait: 2m, listen: 0.0.0.0:%d, kme: 127.0.0.1:%d}\n' "$hub_port" "$kme_port" >> "$work/tiny.yaml"
# QKD keys from a KME per task, which distil them between themselves (simulated BB84 links).
echo 'qkd: required' >> "$work/tiny-policy.yaml"

set +e
GNG=$gng sbatch --wait --nodes=4 --ntasks=4 --ntasks-per-node=1 --output="$dir/job.out" \
  "$src/deploy/slurm/grid.sbatch" "$work" "$work/tiny.yaml" "$hub_port" "$kme_port" > "$dir/sbatch.out" 2>&1
status=$?
set -e
[ "$status" = 0 ] || { cat "$dir/sbatch.out"; show_logs "$dir/job.out"; fail "sbatch --wait returned $status"; }
run=$(ls -d "$work"/runs/*/ | head -1)
[ -n "$run" ] || { show_logs "$dir/job.out"; fail "no run folder"; }
roster=$("$gng" nodes "$run")
echo "$roster"
grep -q "orchestrator on n0 (127.0.0.1:$hub_port), 3 site(s), a KME per task from port $kme_port" "$dir/job.out" || { show_logs "$dir/job.out"; fail "the job did not start the orchestrator on n0"; }
for k in 1 2 3; do
  grep -Eq "^site-$k +(up|lost) +127\.0\.0\.1:" <<<"$roster" || fail "site-$k is not on the roster"
  grep -q "gng node 'site-$k': left: the run it served is over" "$dir/job.out" || { show_logs "$dir/job.out"; fail "site-$k did not leave when the run ended"; }
done
grep -q "end: finished" "$dir/job.out" || { show_logs "$dir/job.out"; fail "the run did not finish"; }
# Every exchange keyed by QKD; every task's KME received keys from another's.
exchanges=$("$gng" audit show "$run" | grep -E '^ +[0-9]+ +[^ ]+ +exchange ' || true)
[ -n "$exchanges" ] && ! grep -vq '"mode":"qkd+pqc"' <<<"$exchanges" || { show_logs "$dir/job.out"; fail "an exchange went without a QKD key"; }
for id in orchestrator site-1 site-2 site-3; do
  shown=$("$gng" audit show "$work/kmes/kme-$id")
  grep -q ' qkd-delivered ' <<<"$shown" || { show_logs "$dir/job.out" "$work/kmes/kme-$id.log"; fail "kme-$id received no key"; }
done
echo "PASS: a 4-node Slurm cluster ran the grid as one job, a KME per task"
