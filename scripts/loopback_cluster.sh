#!/usr/bin/env bash
# `ray up cluster.yaml`, `ray job submit` and `ray down` on one machine, as the README says, with the
# two hosts of cluster.yaml (127.0.0.2 head/proto, 127.0.0.3 worker/heavy) served by a real sshd.
#
# `ray up` and `ray down` run `ray stop` on the nodes, which stops EVERY Ray process it can see, so
# this script runs in its own PID, network and mount namespaces (as root):
#
#     unshare --pid --fork --mount-proc --net --mount bash scripts/loopback_cluster.sh WORKDIR
#
# Inside, only loopback exists; /tmp is a fresh tmpfs and /root an overlay (ssh keys, the Ray token,
# ~/kvs, ~/ray_bootstrap_config.yaml land in WORKDIR/root-upper, never in the real home). A checkout,
# venv or python that lives under /tmp is bound back over the fresh /tmp at its own path, and only
# those. Everything started here dies with the namespace. The job's output and the MLflow runs it
# wrote are left in WORKDIR (job.log, result.json) for tests/test_cluster_up.py.
#
# `... loopback_cluster.sh WORKDIR --mounts-only` sets up the namespace's mounts, prints what the
# cluster would see (cwd, python, what /tmp holds) as one JSON line and stops: a fast check.
set -euo pipefail
WORK=$(realpath "$1")
MODE=${2:-}
REPO=$(cd "$(dirname "$0")/.." && pwd)
step() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }

if [ "$$" != 1 ]; then  # the first process of a new PID namespace
  echo "error: run me under unshare --pid --fork --mount-proc --net --mount (see the header)" >&2
  exit 2
fi
if ip -o addr | grep -v ' lo ' | grep -q inet; then
  echo "error: this namespace has a network interface besides lo; refusing to run ray stop here" >&2
  exit 2
fi

step "namespace: loopback up, private /tmp and /root"
ip link set lo up
mount --make-rprivate /
mkdir -p "$WORK/root-upper" "$WORK/root-work" "$WORK/sshd"
mount --bind "$WORK" /mnt && WORK=/mnt  # WORK may be under /tmp, which is covered next
mount -t overlay overlay -o "lowerdir=/root,upperdir=$WORK/root-upper,workdir=$WORK/root-work" /root
# What the run needs from under /tmp: this checkout, the python on PATH (its bin folder and its
# environment, a venv and the python it was made from) and the ray command. Each is held at
# WORK/keep/N while the tmpfs goes over /tmp, then moved back to its own path.
# Sorted, a folder comes before the folders inside it, which it then brings back with it.
mapfile -t needed < <({ printf '%s\n' "$REPO" "$(dirname "$(command -v python)")" "$(dirname "$(command -v ray)")"
  python -c 'import sys; print(sys.prefix); print(sys.base_prefix)'; } | xargs -d '\n' realpath | LC_ALL=C sort -u)
kept=()
for path in "${needed[@]}"; do
  case "$path/" in /tmp/*) ;; *) continue ;; esac
  for k in "${kept[@]}"; do case "$path/" in "$k"/*) continue 2 ;; esac; done
  mkdir -p "$WORK/keep/${#kept[@]}"
  mount --bind "$path" "$WORK/keep/${#kept[@]}"
  kept+=("$path")
done
mount -t tmpfs tmpfs /tmp
for i in "${!kept[@]}"; do
  mkdir -p "${kept[$i]}"
  mount --move "$WORK/keep/$i" "${kept[$i]}"
  echo "kept under the fresh /tmp: ${kept[$i]}"
done
mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh
cd "$REPO"
if [ "$MODE" = --mounts-only ]; then
  python - "${kept[@]}" <<'EOF'
import json, os, sys
kept = set(sys.argv[1:])
files = []  # everything /tmp holds besides the kept folders and the folders leading to them
for top, dirs, names in os.walk("/tmp"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in kept]
    files += [os.path.join(top, name) for name in names]
print(json.dumps({"cwd": os.getcwd(), "python": sys.prefix, "cluster_yaml": os.path.isfile("cluster.yaml"), "tmp_files": files}))
EOF
  exit 0
fi

step "sshd on 127.0.0.2 and 127.0.0.3"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/sshd/host_key"
ssh-keygen -q -t rsa -b 3072 -N '' -f /root/.ssh/id_rsa
cp /root/.ssh/id_rsa.pub /root/.ssh/authorized_keys
/usr/sbin/sshd -f /dev/null -h "$WORK/sshd/host_key" -o ListenAddress=127.0.0.2:22 -o ListenAddress=127.0.0.3:22 \
  -o PasswordAuthentication=no -o PermitRootLogin=prohibit-password -o StrictModes=no \
  -o AuthorizedKeysFile=/root/.ssh/authorized_keys -o PidFile="$WORK/sshd/sshd.pid" -o UsePAM=no

# Every node runs the project's code from ~/kvs (cluster.yaml's file_mounts). Its setup command
# installs it with pip; here the installed environment is the machine's own, so it only puts ~/kvs
# first on the path (a pip install into the shared environment would change it for everyone).
step "cluster.yaml for this run"
python - "$REPO/cluster.yaml" "$WORK/cluster.yaml" <<'EOF'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
import os
bin_dir = os.path.dirname(sys.executable)  # this python (a venv, pyenv ...) on every ssh session's PATH
line = f"export PATH={bin_dir}:$PATH PYTHONPATH=~/kvs OMP_NUM_THREADS=1"
config["setup_commands"] = [f"grep -q 'PYTHONPATH=~/kvs' ~/.bashrc || echo '{line}' >> ~/.bashrc"]
# small object stores: the machine is shared
config["head_start_ray_commands"][-1] += " --num-cpus=2 --object-store-memory=200000000"
config["worker_start_ray_commands"][-1] += " --num-cpus=1 --object-store-memory=200000000"
yaml.safe_dump(config, open(sys.argv[2], "w"), sort_keys=False)
EOF

export RAY_AUTH_MODE=token RAY_UP_enable_autoscaler_v2=0
ray get-auth-token --generate > /dev/null
step "ray up"
ray up -y "$WORK/cluster.yaml" --no-config-cache
step "waiting for the heavy worker"
for _ in $(seq 60); do
  timeout 30 ray status --address 127.0.0.2:6379 > "$WORK/status.txt" 2>&1 || true
  grep -q "heavy" "$WORK/status.txt" && break
  sleep 2
done
grep -E "CPU|proto|heavy" "$WORK/status.txt" || true
grep -q "heavy" "$WORK/status.txt" || { echo "error: the heavy worker did not join"; cat "$WORK/status.txt"; exit 1; }

step "ray job submit"
ray job submit --address http://127.0.0.2:8265 \
  --runtime-env-json '{"env_vars": {"PYTHONPATH": "/root/kvs", "OMP_NUM_THREADS": "1"}}' -- \
  python -m search.run space=quick study=up storage=/root/studies mlflow.uri=http://127.0.0.1:5000 \
  stage=both trials=2 promote.k=1 folds=2 data.images=16 train.epochs=1 screen.epochs=1 train.scale=0.25 \
  model.encoder_depth=3 model.decoder_channels=[32,16,8] model.arch=Unet ray.cpus_per_trial=1 ray.node_ip=127.0.0.2 2>&1 | tee "$WORK/job.log"

step "reading the MLflow runs"
python - "$WORK/result.json" <<'EOF'
import json, sys, mlflow
client = mlflow.MlflowClient(tracking_uri="http://127.0.0.1:5000")
experiment = client.get_experiment_by_name("up")
runs = client.search_runs([experiment.experiment_id])
out = {
    "experiment_kind": experiment.tags.get("mlflow.experimentKind"),
    "runs": [{"name": r.info.run_name, "status": r.info.status, "tags": {k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.") or k == "mlflow.note.content"}} for r in runs],
}
json.dump(out, open(sys.argv[1], "w"), indent=1)
print(f"{len(runs)} runs in experiment 'up'")
EOF

step "ray down"
ray down -y "$WORK/cluster.yaml"
if pgrep -f raylet > /dev/null; then echo "error: Ray still runs after ray down" >&2; exit 1; fi
step "done"
