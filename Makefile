# dsrlb: `make demo` runs the lab demo, `make test` the whole suite (both as root).
GO      ?= go
BIN     := bin/dsrlb
PSPARSE := internal/loopback/testdata/psparse

.PHONY: all build generate check-generated test test-deps fuzz bench bench-deps demo clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/dsrlb

# Regenerate the BPF objects and bindings (needs clang-19 and llvm-19; the
# results are committed so `go build` needs no clang).
generate:
	$(GO) generate ./internal/maps

# CI: the committed objects must be what clang-19 makes of bpf/.
check-generated: generate
	git diff --exit-code -- internal/maps bpf || { echo "BPF objects differ from the committed ones: run make generate and commit"; exit 1; }

# The PowerShell grammar used to parse generated scripts.
test-deps:
	cd $(PSPARSE) && npm ci --ignore-scripts --no-audit --no-fund --silent

test: test-deps
	$(GO) vet ./...
	$(GO) test -count=1 -p 1 ./...
	$(MAKE) fuzz

# Bounded run of the XDP fuzz target (invariants: PASS unchanged, TX only MACs).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzXDP -fuzztime 20s ./internal/maps

# Postfix and HAProxy for the end-to-end comparison (installed when missing).
bench-deps:
	@command -v postfix >/dev/null && command -v haproxy >/dev/null && command -v smtp-source >/dev/null || { \
		echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix haproxy >/dev/null; }

bench: bench-deps
	$(GO) run ./scripts/bench

demo: build
	$(GO) run ./scripts/demo

clean:
	rm -rf bin
