# Narrate: the two commands are `make run` and `make test`.
export GOTOOLCHAIN := local
GO ?= go

.PHONY: run test build generate check fmt vet contract token bench clean

## run: start the API, GraphiQL and the worker (a local PostgreSQL cluster when DATABASE_URL is unset).
## The binary is built and then run, not through `go run`, which exits 1 whenever it gets a signal. At a
## terminal the server takes the foreground for itself (NARRATE_TERMINAL_FOREGROUND), so a Ctrl-C reaches
## it alone and make reports its own exit status, 0 after a clean stop, instead of re-raising the interrupt.
run: build
	NARRATE_TERMINAL_FOREGROUND=1 exec ./bin/server

## test: run every test against real PostgreSQL clusters the tests start themselves
test:
	$(GO) test -race -count=1 -timeout 10m ./...

## build: build the server binary into bin/server
build:
	$(GO) build -trimpath -o bin/server ./server

## generate: regenerate gqlgen's code from schema.graphqls (gqlgen, then graph/generate's list rewrite)
generate:
	$(GO) run ./graph/generate

## check: generated code in sync, gofmt, go vet, and the public contract
check: fmt vet contract
	$(GO) run ./graph/generate
	git diff --exit-code -- graph go.mod go.sum || (echo "generated code is out of date: run make generate" >&2; exit 1)

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:" >&2; echo "$$out" >&2; exit 1; fi

vet:
	$(GO) vet ./...

## contract: schema.graphqls keeps the public contract, ../shared/contract.graphqls
contract:
	cd ../shared/tools && $(GO) run ./contractcheck ../contract.graphqls "$(CURDIR)/schema.graphqls"

## token: print a dev token, e.g. make token EMAIL=alice@example.com ADMIN=1
token:
	@$(GO) run ./server token --email "$(or $(EMAIL),alice@example.com)" $(if $(ADMIN),--admin)

## bench: Go benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
