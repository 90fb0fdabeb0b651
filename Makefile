# carnot — build, test, demo, bench. `make demo` and `make test` set up a fresh Debian 12 machine themselves.
SHELL := /bin/bash
BUN_VERSION := 1.4.4
# Debian packages the build, the tests and the demo need
APT_PKGS := clang llvm libbpf-dev bpftool libelf-dev strace nginx-light openssl curl python3 hey libseccomp-dev chromium
BPF_SRC := $(wildcard bpf/*.bpf.c)
BPF_OBJ := $(BPF_SRC:.c=.o)
BPF_BUILD := bpf/.build
ARCH := x86

.PHONY: all setup deps bpf build test check typecheck lint unit demo bench clean

all: build

# Install what is missing: Debian packages, Bun (pinned, from npm), node_modules from the lockfile.
setup:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@if ! command -v bun >/dev/null || [ "$$(bun --version)" != "$(BUN_VERSION)" ]; then \
	  echo "setup: installing bun@$(BUN_VERSION) from npm"; npm install -g --silent bun@$(BUN_VERSION); \
	fi
	@bun install --frozen-lockfile --silent

$(BPF_BUILD)/vmlinux.h:
	@mkdir -p $(BPF_BUILD)
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@

bpf/%.bpf.o: bpf/%.bpf.c bpf/*.h $(BPF_BUILD)/vmlinux.h
	clang -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -I$(BPF_BUILD) -Ibpf -c $< -o $@
	llvm-strip -g $@

bpf: $(BPF_OBJ)

carnot: bpf $(shell find src ffi -name '*.ts') package.json
	bun build --compile --minify --sourcemap src/cli.ts --outfile carnot

build: setup carnot

typecheck:
	bun run typecheck

lint:
	bun run lint

unit:
	bun test

# The test command: type check, lint, then every test (the e2e tests need root and trace real handshakes).
test: setup bpf carnot typecheck lint unit

# The main job on a built-in default: a local TLS server, real handshakes, traced by the compiled binary.
demo: build
	./carnot demo

bench: build
	bun run bench/replay.ts
	bun run bench/ringbuf.ts

clean:
	rm -rf carnot $(BPF_BUILD) bpf/*.bpf.o
