#!/usr/bin/env bash
# The main job, end to end, on a local sandbox with a folder as the backup
# location: start the sandbox cluster, back it up, lose a namespace, restore
# it, and show it is back (the script fails if anything is missing). Needs only cargo (and kubectl for the last look).
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

step "a bad day: kubectl delete namespace shop"
kubectl get deployments,statefulsets,services,configmaps,secrets,pvc,widgets -n shop -o name | sort >"$work/before.txt"
kubectl delete namespace shop --wait=true --timeout=60s
if kubectl get namespace shop >/dev/null 2>&1; then
  echo "namespace shop is still there" >&2
  exit 1
fi
echo "namespace shop is gone"

step "kubectl backup restore create demo --include-namespaces shop"
kubectl backup restore create demo demo-restore --include-namespaces shop --location "$location"

step "kubectl backup restore describe demo-restore"
kubectl backup restore describe demo-restore --location "$location"

step "shop is back"
kubectl get deployments,services,configmaps,secrets,pvc -n shop -L kubectl-backup.dev/restore-name
kubectl get deployments,statefulsets,services,configmaps,secrets,pvc,widgets -n shop -o name | sort >"$work/after.txt"
missing=$(comm -23 "$work/before.txt" "$work/after.txt")
if [[ -n $missing ]]; then
  echo "not restored:" >&2
  echo "$missing" >&2
  exit 1
fi
# Pods and ReplicaSets are rebuilt by their controllers under new names, so
# the check compares the objects a user owns.
echo "every object of namespace shop is back ($(wc -l <"$work/before.txt") objects; pods are recreated by their controllers)."
echo
echo "The backup is in $work/backups; the sandbox log is $work/sandbox.log."
