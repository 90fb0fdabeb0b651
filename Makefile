# carnot — build, test, demo, bench. `make demo` and `make test` set up a fresh Debian 12 machine themselves.
SHELL := /bin/bash
BUN_VERSION := 1.4.4
# Debian packages the build, the tests and the demo need (bpfcc-tools and linux-headers-amd64: the test with bcc's
# sslsniff probing the same functions, test/trace/other-tracer.test.ts; prometheus scrapes --metrics-addr in
# test/trace/prometheus.test.ts; nats-server -js receives --export in test/trace/export.test.ts; systemd and libcap2-bin run the packaged unit in test/packaging)
APT_PKGS := clang llvm libbpf-dev bpftool libelf-dev strace nginx-light openssl curl python3 hey libseccomp-dev chromium libssl-dev binutils gcc wget git gnutls-bin default-jdk-headless golang-go tshark iproute2 ethtool nftables zsh fish minisign bpfcc-tools linux-headers-amd64 prometheus nats-server systemd libcap2-bin
BPF_SRC := $(wildcard bpf/*.bpf.c)
BPF_OBJ := $(BPF_SRC:.c=.o)
BPF_BUILD := bpf/.build
ARCH := x86

.PHONY: all setup deps bpf build test check typecheck lint unit demo pipeline bench clean syscalls syscall-args cipher-suites openssl35 node26 release

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

# the hash worker is a second entry point: the chained writer runs it as a thread for large outputs;
# identifiers stay unminified: the tracer names BLAKE3's compress function to the engine (src/trace/engine.ts);
# the AWS inventory is an entry point of its own, so only `inventory aws` parses the AWS SDK; serve's and bom's workers too,
# and the exporter's thread (only `trace --export` loads the NATS client)
carnot: bpf $(shell find src ffi -name '*.ts') package.json
	bun build --compile --minify-syntax --minify-whitespace --sourcemap src/cli.ts src/chain/hash-worker.ts src/inventory/aws/run.ts src/serve/worker.ts src/export/nats-worker.ts src/bom/fleet-worker.ts --outfile carnot

build: setup carnot

typecheck:
	bun run typecheck

lint:
	bun run lint

unit:
	bun test --timeout 120000

# OpenSSL 3.5 for the key-exchange tests: Debian 13's libssl3t64 + libc6 + openssl, downloaded once into .cache/.
openssl35:
	@test/support/fetch-openssl35.sh .cache/openssl35

# Node.js 26 from npm (OpenSSL 3.5 linked in), pinned in test/support/fetch-node.sh, downloaded once into .cache/.
node26:
	@test/support/fetch-node.sh .cache/node

# The test command: type check, lint, then every test (the e2e tests need root and trace real handshakes).
test: setup bpf carnot openssl35 node26 typecheck lint unit

# The main job on a built-in default: local TLS servers, real handshakes traced by the compiled binary, then
# the CBOMs, the post-quantum policy and the attestation made from them (`carnot demo` prints where they are).
demo: build
	./carnot demo

# trace → bom → merge → policy → attest on real local handshakes (curl and python3 against s_server on 127.0.0.1).
pipeline: build
	@set -e; d=$$(mktemp -d /tmp/carnot-pipeline.XXXXXX); \
	port=$$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
	  -keyout $$d/key.pem -out $$d/cert.pem 2>/dev/null; \
	openssl genpkey -algorithm ed25519 -out $$d/ed25519.pem; \
	openssl s_server -accept 127.0.0.1:$$port -cert $$d/cert.pem -key $$d/key.pem -www -quiet >/dev/null 2>&1 & srv=$$!; \
	./carnot trace --out $$d/runtime.jsonl --duration 4 --metrics-interval 0 2>$$d/trace.log & tr=$$!; \
	for i in $$(seq 100); do grep -q 'carnot: ready' $$d/trace.log && break; sleep 0.1; done; \
	for h in api www; do curl -sk -o /dev/null --resolve $$h.pipeline.example:$$port:127.0.0.1 https://$$h.pipeline.example:$$port/; done; \
	curl -sk -o /dev/null --curves ffdhe2048 --resolve old.pipeline.example:$$port:127.0.0.1 https://old.pipeline.example:$$port/; \
	/usr/bin/python3 -c 'import socket, ssl, sys; c = ssl.create_default_context(); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE; c.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="py.pipeline.example").close()' $$port; \
	wait $$tr; kill $$srv; \
	printf '%s\n' '{"schema":"carnot.v2.1.cryptobom","run_id":"inventory","summary":{"components":0,"observations":0,"unique_snis":0},"observations":[],"metrics":{"sni_counts":{},"components":[]},"assets":[{"asset_id":"svc-pipeline","kind":"service","source":"static.inventory","domains":["*.pipeline.example"],"owner":"platform","data_class":"confidential","secrecy_lifetime_years":15,"exposure":"PUBLIC_INTERNET"}]}' > $$d/inventory.cryptobom.json; \
	./carnot bom $$d/runtime.jsonl -o $$d/runtime.bom.json; \
	./carnot bom $$d/runtime.jsonl --format cyclonedx -o $$d/runtime.cdx.json; \
	./carnot merge $$d/runtime.bom.json $$d/inventory.cryptobom.json -o $$d/merged.json; \
	./carnot policy $$d/merged.json -o $$d/policy.json; \
	./carnot policy $$d/merged.json --format sarif -o $$d/policy.sarif 2>/dev/null; \
	./carnot attest $$d/merged.json --policy $$d/policy.json --key $$d/ed25519.pem -o $$d/attestation >/dev/null; \
	./carnot attest verify $$d/attestation.json; \
	echo "pipeline: reports in $$d: runtime.bom.json runtime.cdx.json merged.json policy.json policy.sarif attestation.{json,md,html}"

# The release bundle in $(DIST): the executable, a tarball, the SBOM of carnot's own dependencies, release notes
# generated from WORKLOG.md (entries after RELEASE_SINCE), SHA256SUMS and its minisign signature. The key is
# created at RELEASE_KEY when there is none.
VERSION = $(shell sed -n 's/^  "version": "\(.*\)",$$/\1/p' package.json)
DIST ?= dist
RELEASE_KEY ?= $(HOME)/.minisign/carnot-release.key
RELEASE_PUB ?= $(HOME)/.minisign/carnot-release.pub
RELEASE_SINCE ?=
release: build
	@release/bundle.sh $(VERSION) $(RELEASE_KEY) $(RELEASE_PUB) $(DIST) $(RELEASE_SINCE)

bench: build
	bun run bench/replay.ts
	bun run bench/chain.ts
	bun run bench/ringbuf.ts
	bun run bench/trace.ts
	bun run bench/kex-accuracy.ts
	bun run bench/consumers.ts
	bun run bench/wire-parse.ts
	bun run bench/cgroup-resolve.ts
	bun run bench/metrics.ts
	bun run bench/export.ts
	bun run bench/fleet-bom.ts
	bun run bench/record.ts

# Regenerates the committed x86-64 syscall table `carnot seccomp` checks names against.
syscalls:
	bun src/consumers/seccomp/generate-syscall-table.ts /usr/include/x86_64-linux-gnu/asm/unistd_64.h

# Regenerates the committed argument kinds of every syscall `carnot record` reads, from this kernel's tracepoint formats.
syscall-args:
	bun src/record/generate-syscall-args.ts /sys/kernel/tracing/events/syscalls

# Regenerates the committed cipher suite names the wire parser uses, from Wireshark's value strings (tshark).
cipher-suites:
	bun src/trace/wire/tls/generate-cipher-suites.ts

clean:
	rm -rf carnot $(BPF_BUILD) bpf/*.bpf.o dist
