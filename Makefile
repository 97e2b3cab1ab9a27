# procq: build the three executables, run the demo, run the tests.
GO ?= go
BIN := bin
CMDS := broker producer consumer

.PHONY: bench-schedule bench-priority natscli build run test bench reliability security screenshot clean

build:
	$(GO) build -buildvcs=auto -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

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
	@# The cluster under network faults (needs root; RELIABILITY.md): every
	@# scenario with its full fault, one table; failing rows fail the target.
	@rm -f netfault.rows
	@status=0; NETFAULT_FULL=1 NETFAULT_OUT=$(CURDIR)/netfault.rows $(GO) test -race -count=1 -timeout 30m -run '^TestNetFault' ./e2e || status=1; \
	echo '| scenario | inputs | submitted | acknowledged | ok | lost | duplicated | unknown | map failed | longest pause (s) | map took (s) | fault |'; \
	echo '|---|---|---|---|---|---|---|---|---|---|---|---|'; \
	cat netfault.rows 2>/dev/null; exit $$status

# The security suite (SECURITY.md): every attack tried against the real
# executables, each test printing what was refused and how.
SECURITY_TESTS := TestConnectRefusalsAreFinalAndSaid|TestConnectRefusesBadBrokerCertificates|TestConnectMutualTLS|TestStoreKey|TestLoadErrors
SECURITY_E2E := TestBrokerRefusesClientWithoutToken|TestRoleCredentials|TestTLSEverywhere|TestStockNATSServerCredentials|TestSecrets.*|TestDeadLettersShowNoTerminalControls|TestStatusWithoutBrokerWaitsOnlyWait|TestOperations|TestCluster
security:
	@rm -f security.log
	@status=0; \
	$(GO) test -race -count=1 -v -run '^($(SECURITY_TESTS))$$' ./link ./broker ./config >> security.log 2>&1 || status=1; \
	$(GO) test -race -count=1 -v -timeout 15m -run '^($(SECURITY_E2E))$$' ./e2e >> security.log 2>&1 || status=1; \
	grep -E '^\s*--- (PASS|FAIL|SKIP)|^(ok|FAIL)\s' security.log; exit $$status

# Benchmarks: every comparison in one run (pool against Python's
# Pool.map at 100,000 and 1,000,000 inputs, against raw JetStream, one-task
# latency, idle consumer RSS, producer memory), ONE markdown table at the end
# (see BENCHMARKS.md). BENCH_ARGS="ROUNDS_100K ROUNDS_1M" (default "3 1").
bench: build
	GO=$(GO) bench/all.sh $(BENCH_ARGS)

# Tasks in time (BENCHMARKS.md): the lateness of 1,000 delayed tasks and an
# every-1s schedule over 60 s, twice each; about 2.5 minutes.
bench-schedule:
	$(GO) test -run '^$$' -bench Schedule -benchtime 1x -count 2 -timeout 15m .

# Priorities (BENCHMARKS.md): how long a high-priority task put behind
# 10,000 queued low-priority ones waits, against the time one prefetch
# window of them takes, for tiny, 1ms and 10ms tasks; about a minute.
bench-priority:
	$(GO) test -run '^$$' -bench PriorityOvertake -benchtime 5x -timeout 10m ./consumer

# The wire format of a delayed task published with the nats CLI
# (docs/wire-format.md): builds natscli v0.5.0 into bin/ (a minute or more
# the first time, so not in make test) and runs the test that uses it.
natscli:
	GOBIN=$(CURDIR)/$(BIN) $(GO) install github.com/nats-io/natscli/nats@v0.5.0
	PROCQ_NATSCLI=$(CURDIR)/$(BIN)/nats $(GO) test -race -count=1 -run 'TestScheduleStandalone/group/WireFormatWithNatscli' ./e2e

# The dashboard's screenshot in docs/operations.md (docs/dashboard.png),
# taken by its browser test (needs chromium).
screenshot:
	DASHBOARD_SCREENSHOT=$(CURDIR)/docs/dashboard.png $(GO) test -count=1 -run 'TestOperations/dashboard' ./e2e

clean:
	rm -rf $(BIN) data logs security.log reliability.rows netfault.rows
