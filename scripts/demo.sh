#!/usr/bin/env bash
# The main job, end to end, on a local sandbox with a folder as the backup
# location: start the sandbox cluster, back it up, lose a namespace, restore
# it, and show it is back. Needs only cargo (and kubectl for the last look).
#
#   scripts/demo.sh            # builds, runs, and stops the sandbox at the end
#   KEEP=1 scripts/demo.sh     # leaves the sandbox running for you to explore
set -euo pipefail
cd "$(dirname "$0")/.."

work=${DEMO_DIR:-$PWD/.sandbox/demo}
rm -rf "$work"
mkdir -p "$work"
kubeconfig="$work/kubeconfig"
location="file://$work/backups"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "building kubectl-backup and the sandbox"
cargo build --locked -q -p kubectl-backup -p e2e --bin kubectl-backup --bin sandbox
export PATH="$PWD/target/debug:$PATH"
export KUBECONFIG="$kubeconfig"

step "starting the sandbox cluster"
./target/debug/sandbox --kubeconfig "$kubeconfig" >"$work/sandbox.log" 2>&1 &
sandbox=$!
cleanup() {
  if [[ -z ${KEEP:-} ]]; then kill "$sandbox" 2>/dev/null || true; wait "$sandbox" 2>/dev/null || true; fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  grep -q "sandbox ready" "$work/sandbox.log" 2>/dev/null && break
  kill -0 "$sandbox" 2>/dev/null || { cat "$work/sandbox.log"; echo "the sandbox did not start" >&2; exit 1; }
  sleep 0.2
done
grep -q "sandbox ready" "$work/sandbox.log" || { echo "the sandbox did not get ready in 20 s" >&2; exit 1; }
kubectl get deployments,services,configmaps,secrets,pvc -n shop

step "kubectl backup create demo --location $location"
kubectl backup create demo --location "$location"

step "kubectl backup list"
kubectl backup list --location "$location"

step "kubectl backup describe demo"
kubectl backup describe demo --location "$location"

echo
echo "The backup is in $work/backups; the sandbox log is $work/sandbox.log."
