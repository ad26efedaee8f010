# ringfront — build, test, lint, benchmarks and the lab.
# `make test` is the README's test command and what CI runs.

GO       ?= go
BIN      := bin
DAEMONS  := dnslb vipwatch appnode
PREFIX   ?= /usr/local
GOFLAGS  ?= -trimpath

.PHONY: all build test test-short lint deps bench-dns clean $(DAEMONS)

all: build

build: $(DAEMONS)

$(DAEMONS):
	@mkdir -p $(BIN)
	@if [ -d $@ ]; then $(GO) build $(GOFLAGS) -o $(BIN)/$@ ./$@; fi

# test runs every test: unit, loopback integration, and (as root) the
# network-namespace tests. Non-root runs skip the namespace tests with a
# message saying so.
test: lint
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race -timeout 20m ./internal/...

test-short:
	$(GO) test -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# deps installs the Debian packages the tests and benchmarks use.
deps:
	.ci/deps

bench-dns: build
	bench/dns/run

clean:
	rm -rf $(BIN)

# bench-appnode measures appnode on a 3-member loopback cluster beside
# nginx (bench/appnode/main.go says what). On a shared machine run it as
# `flock -o /work/bench.lock make bench-appnode`.
.PHONY: bench-appnode
bench-appnode: appnode
	$(GO) run ./bench/appnode -appnode $(BIN)/appnode
