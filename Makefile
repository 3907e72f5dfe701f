# Storeline's build. `make test` is the contract (STYLE.md): gofmt clean,
# go vet, go.mod/go.sum tidy, and every test with -race and the invariants
# build tag. Slow suites have their own targets and run briefly inside it.

GO        ?= go
BIN       ?= bin/storeline
FUZZTIME  ?= 30s
BENCHTIME ?= 200ms
KILLS     ?= 20
TESTFLAGS ?=

.PHONY: all build test fmt-check vet tidy-check test-go demo load bench bench-peers fuzz crash clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/storeline

# go test prints each package's time ("ok  <pkg>  12.3s"); the last line is
# the whole run's wall time.
test: fmt-check vet tidy-check test-go

test-go:
	@start=$$(date +%s); \
	$(GO) test -race -count=1 -tags invariants $(TESTFLAGS) ./... ; rc=$$?; \
	echo "make test: go test took $$(( $$(date +%s) - start ))s"; exit $$rc

fmt-check:
	@files=$$(gofmt -l . 2>&1); \
	if [ -n "$$files" ]; then echo "gofmt needs to be run on:"; echo "$$files"; exit 1; fi

vet:
	$(GO) vet -tags invariants ./...

# go mod tidy -diff prints what tidy would change and fails, touching nothing.
tidy-check:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

demo:
	$(GO) run ./cmd/storeline demo

# The till simulator against a running node (make demo in another
# terminal): SHOP is its tills' URL and admin URL, ADMIN_TOKEN its admin
# token (the demo prints both).
SHOP        ?= http://127.0.0.1:8080,admin=http://127.0.0.1:9090
TILLS       ?= 4
LOADTIME    ?= 30s
load:
	STORELINE_ADMIN_TOKEN=$(ADMIN_TOKEN) $(GO) run ./cmd/storeline till -shop '$(SHOP)' -tills $(TILLS) -duration $(LOADTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./...

# Central's tests at full size (a 100,000-item import through the API).
.PHONY: central-long
central-long:
	$(GO) test -race -count=1 -run 'BulkImport' ./central -args -central.long

# Central's figures for BENCHMARKS.md: committed changes/s on a 3-node
# loopback cluster next to a raw hashicorp/raft harness, a 100k-item
# import, and write latency through a follower.
.PHONY: bench-central
bench-central:
	$(GO) test -run '^$$' -bench 'ClusterCommit|RawRaft|Import100k|FollowerWrite' -benchtime 3s ./central

# Storeline side by side with PostgreSQL, SQLite, etcd and a raw Raft
# cluster (issue 9). bench/ is a module of its own, so the product's go.mod
# gains no database drivers. Installs the peers when absent (as root, from
# Debian; gcc for the SQLite driver's cgo), then the harness starts them in
# throwaway directories on loopback ports, runs every contender interleaved,
# prints the table and stops each peer by its PID. A smoke run:
# make bench-peers BENCH_FLAGS='-rounds 3'. -mod=mod lets bench/go.sum
# follow the root module's requirements as they change.
BENCH_FLAGS ?=
bench-peers:
	@if ! command -v etcd >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	   ! command -v sqlite3 >/dev/null || ! command -v gcc >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			postgresql sqlite3 etcd-server gcc libc6-dev; \
	fi
	cd bench && $(GO) run -mod=mod . $(BENCH_FLAGS)

# Each Fuzz target, one after the other, for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# The long crash test: KILLS SIGKILLs of a node under load, each followed by
# a restart and the checks (make test runs 3).
crash:
	$(GO) test -count=1 -tags invariants -timeout 30m -run 'TestCrash' -v ./internal/crashtest/ -crash.kills=$(KILLS)

clean:
	rm -rf bin
