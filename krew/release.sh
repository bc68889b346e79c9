#!/usr/bin/env bash
# Build release archives of kubectl-backup and render the krew manifest.
#
#   krew/release.sh VERSION [--out DIR] [--binary PATH] [--manifest FILE]
#
# VERSION is a semantic version with a leading v (v0.1.0). For each target in
# TARGETS whose Rust toolchain is installed (rustup target list --installed),
# the release binary is built and packed with LICENSE into
# kubectl-backup-<os>-<arch>.tar.gz; archives already present in --out (for
# example built on another machine) are used as they are. The manifest lists
# every platform that has an archive; the others are reported as skipped.
# --binary PATH packs an existing binary for the host platform instead of
# building it (used by the tests). --manifest FILE writes the manifest there
# (default: <out>/backup.yaml).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
version=""
out="$repo/dist"
binary=""
manifest=""
while (($#)); do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --manifest) manifest=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "release.sh: unknown option $1" >&2; exit 2 ;;
    *) version=$1; shift ;;
  esac
done
if [[ ! $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$ ]]; then
  echo "release.sh: VERSION must be a semantic version with a leading v, e.g. v0.1.0 (got '${version}')" >&2
  exit 2
fi
crate_version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)
if [[ "v$crate_version" != "${version%%+*}" ]]; then
  echo "release.sh: warning: VERSION $version differs from the workspace version $crate_version" >&2
fi
mkdir -p "$out"
manifest=${manifest:-$out/backup.yaml}

# os arch rust-target binary-suffix
TARGETS=(
  "linux amd64 x86_64-unknown-linux-gnu ''"
  "linux arm64 aarch64-unknown-linux-gnu ''"
  "darwin amd64 x86_64-apple-darwin ''"
  "darwin arm64 aarch64-apple-darwin ''"
  "windows amd64 x86_64-pc-windows-gnu .exe"
)
host=$(rustc -vV | sed -n 's/^host: //p')
installed=$(rustup target list --installed 2>/dev/null || echo "$host")

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

platforms=""
built=()
skipped=()
for entry in "${TARGETS[@]}"; do
  read -r os arch target suffix <<<"$entry"
  suffix=${suffix//\'/}
  archive="$out/kubectl-backup-$os-$arch.tar.gz"
  bin_name="kubectl-backup$suffix"
  if [[ -n $binary && $target == "$host" ]]; then
    src=$binary
  elif grep -qx "$target" <<<"$installed"; then
    echo "::: building $target" >&2
    cargo build --release --locked -p kubectl-backup --target "$target" --manifest-path "$repo/Cargo.toml" >&2
    src="$repo/target/$target/release/$bin_name"
  elif [[ -f $archive ]]; then
    src=""
  else
    skipped+=("$os/$arch ($target: toolchain not installed, no archive in $out)")
    continue
  fi
  if [[ -n $src ]]; then
    stage=$(mktemp -d)
    cp "$src" "$stage/$bin_name"
    cp "$repo/LICENSE" "$stage/LICENSE"
    tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$archive" "$bin_name" LICENSE
    rm -rf "$stage"
  fi
  sha=$(sha256_of "$archive")
  built+=("$os/$arch $archive $sha")
  platforms+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: https://github.com/kubectl-backup/kubectl-backup/releases/download/$version/kubectl-backup-$os-$arch.tar.gz
    sha256: $sha
    bin: $bin_name
    files:
      - from: $bin_name
        to: .
      - from: LICENSE
        to: .
"
done
if [[ -z $platforms ]]; then
  echo "release.sh: no platform could be built or found in $out" >&2
  exit 1
fi
tmpl="$repo/krew/backup.yaml.tmpl"
{
  while IFS= read -r line; do
    case "$line" in
      "{{PLATFORMS}}") printf '%s' "$platforms" ;;
      *) printf '%s\n' "${line//\{\{VERSION\}\}/$version}" ;;
    esac
  done <"$tmpl"
} >"$manifest"
for b in "${built[@]}"; do echo "archive: $b"; done
for s in "${skipped[@]}"; do echo "skipped: $s" >&2; done
echo "manifest: $manifest"
