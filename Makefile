# Storeline's build. `make test` is the contract (STYLE.md): gofmt clean,
# go vet, go.mod/go.sum tidy, and every test with -race and the invariants
# build tag. Slow suites have their own targets and run briefly inside it.

GO        ?= go
BIN       ?= bin/storeline
FUZZTIME  ?= 30s
BENCHTIME ?= 200ms
KILLS     ?= 20
TESTFLAGS ?=

.PHONY: all build test fmt-check vet tidy-check test-go demo load bench bench-peers fuzz crash canaries clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/storeline

# go test prints each package's time ("ok  <pkg>  12.3s"); the last line is
# the whole run's wall time. Three packages at a time on two cores: most
# of central's and the chain's time is waiting on Raft and HTTP, which a
# third package fills (a fresh clone's .ci/run, 2026-11-30, slow window:
# go test 565 s at the default two, 488 s at three, every package passing).
test: fmt-check vet tidy-check test-go

test-go:
	@start=$$(date +%s); \
	$(GO) test -race -count=1 -tags invariants -p 3 $(TESTFLAGS) ./... ; rc=$$?; \
	echo "make test: go test took $$(( $$(date +%s) - start ))s"; exit $$rc

fmt-check:
	@files=$$(gofmt -l . 2>&1); \
	if [ -n "$$files" ]; then echo "gofmt needs to be run on:"; echo "$$files"; exit 1; fi

vet:
	$(GO) vet -tags invariants ./...

# go mod tidy -diff prints what tidy would change and fails, touching nothing.
tidy-check:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

# The whole chain on this machine (README, "The demo"): 3 central nodes, 2
# shops, simulated tills, scripted moments and a closing check; a minute by
# default. DEMO_FLAGS='-duration 0' runs until Ctrl-C; -items, -customers,
# -tills, -rate and -data change the rest.
DEMO_FLAGS ?=
demo:
	$(GO) run ./cmd/storeline demo $(DEMO_FLAGS)

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

# The store node's durable receipts against the 4 KiB append+fdatasync
# probe, interleaved in 300 ms slices (issue 3's floor: 1x / 3x / 10x at 1,
# 8 and 64 writers); LEDGER_WRITERS picks other writer counts.
LEDGER_WRITERS ?= 1,8,64
.PHONY: bench-ledger
bench-ledger:
	$(GO) test -count=1 -run TestBenchInterleaved -v ./ledger/ -args -ledger.bench -ledger.bench.writers=$(LEDGER_WRITERS)

# Central's tests at full size (a 100,000-item import through the API,
# and the model tests' and the log store's full seeds and steps).
.PHONY: central-long
central-long:
	$(GO) test -race -count=1 -timeout 30m -run 'BulkImport|Model|DebtTotalMatchesScan|LogStoreConformance' -v ./central -args -central.long

# The tills' API's property tests at full size (100 till histories
# against the model; make test runs 5).
.PHONY: posbridge-long
posbridge-long:
	$(GO) test -race -count=1 -timeout 30m -run 'TestTillHistoriesMatchModel' -v ./posbridge -args -posbridge.long

# Central's figures for BENCHMARKS.md: committed changes/s on a 3-node
# loopback cluster next to a raw hashicorp/raft harness, a 100k-item
# import, and write latency through a follower.
.PHONY: bench-central
bench-central:
	$(GO) test -run '^$$' -bench 'ClusterCommit|RawRaft|Import100k|FollowerWrite' -benchtime 3s ./central

# Replication at full size: the shop sells 10,000 receipts while cut off
# (make test sells 1,000), against the reference backend and against a
# 3-node central with two shops.
.PHONY: repl-long
repl-long:
	$(GO) test -race -count=1 -timeout 30m -v -run 'TestOfflineSellingConverges|TestShopsConvergeWithCentral' ./replication ./central -args -repl.long

# The seeded whole-chain simulation (internal/simtest): seeds from 1000 on
# within SIM_BUDGET (or SEEDS of them: make sim SEEDS=1000), SIM_PARALLEL
# chains at a time, without -race (SIM_RACE=1 adds it); or the one SEED a
# failure printed (make sim SEED=42).
SIM_BUDGET   ?= 30m
SIM_PARALLEL ?= 4
SIM_FLAGS    ?=
SEED         ?=
SEEDS        ?=
SIM_RACE     ?=
.PHONY: sim
sim:
	$(GO) test $(if $(SIM_RACE),-race) -count=1 -tags invariants -timeout 0 -run 'TestSimMany' -v ./internal/simtest \
		-args -sim.budget=$(SIM_BUDGET) -sim.parallel=$(SIM_PARALLEL) $(if $(SEED),-sim.seed=$(SEED)) \
		$(if $(SEEDS),-sim.seeds=$(SEEDS)) $(SIM_FLAGS)

# Replication figures for BENCHMARKS.md: the upload of 20,000 backlogged
# receipts to a 3-node loopback central (with request bytes per receipt),
# the provisioning of a new shop with 100,000 items, barcodes and prices,
# and price-change latency to a till under 200 receipts/s.
.PHONY: bench-repl
bench-repl:
	$(GO) test -run '^$$' -bench 'ReplicationUpload|ReplicationProvision' -benchtime 1x -count 3 -timeout 30m ./central -args -repl.provision=100000
	$(GO) test -run '^$$' -bench 'ReplicationPriceLatency' -benchtime 500x -count 2 ./central

# Back office: a shop uploads 20,000 sales, then head office posts an
# invoice: costing on push (after) against lazy passes re-reading the
# backlog (before). Figures in BENCHMARKS.md "## back office".
.PHONY: bench-backoffice
bench-backoffice:
	$(GO) test -run '^$$' -bench 'CostBacklog' -benchtime 1x -count 3 -timeout 30m ./central -args -backoffice.backlog=20000

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

# Each Fuzz target, one after the other, for FUZZTIME each. A package whose
# tests do not build fails the target (its fuzzers would go unrun).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		list=$$($(GO) test -list '^Fuzz' $$pkg) || { echo "$$list"; echo "fuzz: cannot list $$pkg's fuzzers"; exit 1; }; \
		for f in $$(echo "$$list" | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# The long crash test: KILLS SIGKILLs of a node under load, each followed by
# a restart and the checks (make test runs 3).
crash:
	$(GO) test -count=1 -tags invariants -timeout 30m -run 'TestCrash' -v ./internal/crashtest/ -crash.kills=$(KILLS)

# The whole chain as real processes (internal/chaostest): a 3-node central
# and 2 shops under till load, SIGKILLed at random moments (shops, the
# central leader, central followers) and restarted; at the end every
# acknowledged receipt must be at its shop and every central node exactly
# once, with equal balances (make test runs 3/2/1 kills). The seed prints;
# CHAOS_SEED=N replays the kill schedule.
CHAOS_SHOP_KILLS     ?= 50
CHAOS_LEADER_KILLS   ?= 20
CHAOS_FOLLOWER_KILLS ?= 10
CHAOS_SEED           ?= 0
# TestChaosCutOffDay: receipts per shop while cut off (make test: 40), and
# every cut point and flip of the corrupted bodies.
CHAOS_DAY_RECEIPTS   ?= 50000
.PHONY: chaos
chaos:
	$(GO) test -count=1 -tags invariants -timeout 60m -run 'TestChaos' -v ./internal/chaostest/ \
		-args -chaos.shop-kills=$(CHAOS_SHOP_KILLS) -chaos.leader-kills=$(CHAOS_LEADER_KILLS) \
		-chaos.follower-kills=$(CHAOS_FOLLOWER_KILLS) -chaos.seed=$(CHAOS_SEED) \
		-chaos.day-receipts=$(CHAOS_DAY_RECEIPTS) -chaos.corrupt-all

# Planted bugs (build tags canary_<name>, files canary_*.go): each entry is
# name:packages:tests ("," between packages, "+" between tests). Every
# canary must make at least one of its tests fail, and the tests it made
# fail must pass without it (else the failure is not the canary's); one the
# suite misses fails the target. A build failure does not count as caught.
CANARIES ?= \
	ack_before_sync:./ledger:TestPowerLoss$$ \
	skip_dedup:./ledger,./node:TestAppendIdempotentAndConflict+TestTillAPIWiring \
	apply_twice:./replication,./central,./internal/simtest:TestIngestProperties+TestBadBatchesChangeNothing+TestShopsConvergeWithCentral+TestSimSeeds \
	drop_rejection:./replication,./central:TestOfflineSellingConverges+TestShopsConvergeWithCentral \
	skip_readback:./ledger:TestPowerLoss$$+TestValueLogLossRestoredFromWAL+TestCheckpointSyncFailurePoisons
canaries:
	@caught=0; missed=0; for c in $(CANARIES); do \
		tag=$${c%%:*}; rest=$${c#*:}; pkgs=$$(echo $${rest%%:*} | tr , ' '); run=$$(echo $${rest#*:} | tr + '|'); \
		out=$$($(GO) test -count=1 -timeout 5m -tags "invariants canary_$$tag" -run "$$run" $$pkgs 2>&1); \
		fails=$$(echo "$$out" | grep -E '^ *--- FAIL' | sed -e 's/ (.*//' -e 's/^ *--- FAIL: //' | sort -u | tr '\n' ' '); \
		if [ -z "$$fails" ]; then echo "canary $$tag: NOT CAUGHT"; echo "$$out" | tail -20; missed=$$((missed+1)); continue; fi; \
		top=$$(echo $$fails | tr ' ' '\n' | grep -v / | sort -u | paste -sd '|'); \
		base=$$($(GO) test -count=1 -timeout 5m -tags invariants -run "^($$top)\$$" $$pkgs 2>&1); \
		if echo "$$base" | grep -qE '^ *--- FAIL|^FAIL'; then \
			echo "canary $$tag: NOT CAUGHT: $$top fail without the canary too"; echo "$$base" | tail -20; missed=$$((missed+1)); \
		else echo "canary $$tag: caught by $$fails"; caught=$$((caught+1)); fi; \
	done; echo "canaries: $$caught caught, $$missed missed"; [ $$missed -eq 0 ]

clean:
	rm -rf bin
