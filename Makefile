# Storeline's build. `make test` is the contract (STYLE.md): gofmt clean,
# go vet, go.mod/go.sum tidy, and every test with -race and the invariants
# build tag. Slow suites have their own targets and run briefly inside it.

GO        ?= go
BIN       ?= bin/storeline
FUZZTIME  ?= 30s
BENCHTIME ?= 200ms
KILLS     ?= 20
TESTFLAGS ?=

.PHONY: all build test fmt-check vet tidy-check test-go demo bench fuzz crash clean

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

bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./...

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
