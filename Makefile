# procq: build the three executables, run the demo, run the tests.
GO ?= go
BIN := bin
CMDS := broker producer consumer

.PHONY: build run test bench reliability clean

build:
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

# The demos on the embedded broker: Queue, Pool, Pipe, then Process (compare).
run: build
	$(BIN)/producer queue
	$(BIN)/producer pool
	$(BIN)/producer pipe
	$(BIN)/producer compare

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...

# The fault suite with its figures: one row per scenario, as RELIABILITY.md
# shows them (the store-full scenario needs root to mount a tmpfs).
reliability:
	rm -f reliability.rows
	RELIABILITY_OUT=$(CURDIR)/reliability.rows $(GO) test -race -count=1 -timeout 20m -run '^(TestFault|TestBrokerRefusesClientWithoutToken|TestSecondBrokerOnSameStoreRefused)' ./e2e
	@echo '| scenario | submitted | results | exact | duplicates dropped | dead-lettered | lost | recover (s) | what "recover" measures |'
	@echo '|---|---|---|---|---|---|---|---|---|'
	@sort reliability.rows

# Benchmarks: the Go ones, then pool throughput next to Python's Pool.map
# and the compare speedup, each side by side in one run (see BENCHMARKS.md).
bench: build
	$(GO) test -run '^$$' -bench 'MapSquare|ImapMillion' -benchtime 3x ./producer
	$(GO) test -run '^$$' -bench OneTask -benchtime 500x ./producer
	$(GO) test -run '^$$' -bench . -benchtime 5000x -count 3 ./pipe
	bench/pool.sh 100000 3
	bench/compare.sh 3

clean:
	rm -rf $(BIN) data logs
