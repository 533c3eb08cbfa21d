#!/usr/bin/env bash
# Fingerprints of the release build, so that `make build` can skip cargo-leptos when nothing it
# reads or writes has changed (a second `make run` then starts serving at once).
#
#   tools/build-stamp.sh inputs    what the build reads: every file's path and content (SHA-256)
#                                  under src/ style/ public/ assets/ migrations/ .cargo/, the
#                                  manifests and lock file, Leptos.toml, the Makefile, the
#                                  compressor, and the versions of the toolchain and build tools
#   tools/build-stamp.sh outputs   what the build wrote: the server binary, its hash.txt and
#                                  every file of the site folder (name, size, modification time)
#
# Contents, not modification times, for the inputs: a file restored with an old time (a
# checkout, an editor's backup) still counts as changed. The outputs are checked as well, so a
# deleted site folder or `make dev`'s debug build in it (written to the same folder) is rebuilt.
# The Makefile reads the inputs before building and stores both after a build succeeded: an
# edit made while cargo-leptos runs is seen by the next run.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
site=target/site

case "${1:-}" in
  inputs)
    {
      find src style public assets migrations .cargo -type f -print0 2>/dev/null | sort -z |
        xargs -0 -r sha256sum
      sha256sum Cargo.toml Cargo.lock Leptos.toml Makefile rust-toolchain.toml tools/precompress.mjs
      echo "target ${target}"
      rustc --version 2>&1 || true
      cargo leptos --version 2>&1 || true
      wasm-bindgen --version 2>&1 || true
    } | sha256sum | cut -d' ' -f1
    ;;
  outputs)
    {
      for f in "$target/release/waifu-rt3d" "$target/release/hash.txt"; do
        stat -c '%n %s %Y' "$f" 2>/dev/null || echo "missing $f"
      done
      if [ -d "$site/pkg" ]; then
        find "$site" -type f -printf '%P %s %T@\n' | LC_ALL=C sort
      else
        echo "missing $site/pkg"
      fi
    } | sha256sum | cut -d' ' -f1
    ;;
  *)
    echo "usage: $0 inputs|outputs" >&2
    exit 2
    ;;
esac
