# procq: build the three executables, run the demo, run the tests.
GO ?= go
BIN := bin
CMDS := broker producer consumer

.PHONY: build run test bench clean

build:
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

run: build
	$(BIN)/producer queue

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

clean:
	rm -rf $(BIN) data logs
