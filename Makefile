# ringfront — build, test, lint, benchmarks and the lab.
# `make test` is the README's test command and what CI runs.

GO       ?= go
BIN      := bin
DAEMONS  := dnslb vipwatch appnode
PREFIX   ?= /usr/local
GOFLAGS  ?= -trimpath

.PHONY: all build test test-short lint deps fuzz units bench-dns lab lab-down lab-status drill drills chaos install clean $(DAEMONS)

all: build

build: $(DAEMONS)

$(DAEMONS):
	@mkdir -p $(BIN)
	@if [ -d $@ ]; then $(GO) build $(GOFLAGS) -o $(BIN)/$@ ./$@; fi

# test runs every test: unit, loopback integration, and (as root) the
# network-namespace tests. Non-root runs skip the namespace tests with a
# message saying so.
test: deps lint units
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race -timeout 20m ./internal/...
	$(MAKE) fuzz

# units checks the systemd units (systemd-analyze verify and security).
units: build
	.ci/check-units

# fuzz runs every packet and parser fuzz target for a bounded number of
# executions each (about 5-8 s apiece on 2 cores); the seeds and any
# crashers found are kept in testdata/. Counts, not durations: Go 1.26's
# fuzz coordinator can fail a target with a bare "context deadline
# exceeded" when a -fuzztime duration ends under CPU contention
# (golang/go#75804, fixed in Go 1.27). FUZZTIME=30s (say) overrides every
# target's budget for a longer run.
FUZZTIME ?=
FUZZ_TARGETS := ./dnslb/authority:FuzzFast:40000 ./dnslb/server:FuzzAnswerUDP:60000 \
	./vipwatch/heartbeat:FuzzDecode:150000 ./vipwatch/heartbeat:FuzzGuard:150000 \
	./vipwatch/iface:FuzzStateFile:15000 ./vipwatch/probe:FuzzAsk:400 \
	./appnode/server:FuzzAPI:12000 ./appnode/ring:FuzzRing:80000 \
	./appnode/feed:FuzzParseID:200000 ./appnode/feed:FuzzValidate:100000 \
	./appnode/server:FuzzLinkFrame:20000 ./appnode/server:FuzzFanoutInternal:30000
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; fn=$${rest%%:*}; n=$${rest#*:}; \
		budget="$(FUZZTIME)"; [ -n "$$budget" ] || budget="$${n}x"; \
		echo "fuzz $$pkg $$fn ($$budget)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $$budget $$pkg || exit 1; \
	done

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

# The lab: the whole system in network namespaces on this machine (root).
lab: deps build
	$(GO) build -o $(BIN)/lab ./lab
	$(BIN)/lab up

lab-down:
	@[ -x $(BIN)/lab ] || $(GO) build -o $(BIN)/lab ./lab
	$(BIN)/lab down

# make drill DRILL=kill-frontend runs one drill; make drills runs them all.
drill:
	@[ -n "$(DRILL)" ] || { echo "usage: make drill DRILL=name (kill-frontend link-down pair-down dns-down owner-down handover)"; exit 2; }
	$(GO) build -o $(BIN)/lab ./lab
	$(BIN)/lab drill $(DRILL)

drills:
	$(GO) build -o $(BIN)/lab ./lab
	$(BIN)/lab drill

# chaos runs appnode's Jepsen-style chaos test (appnode/chaos) with the
# full schedule on both profiles (replicas 3 and 2), a few minutes, under
# the benchmark lock (root: network namespaces). SEED=n replays another
# schedule and operation mix. The members' logs and each history stay in
# $(BIN)/chaos-run. go test ./appnode/chaos (in make test) runs a bounded
# schedule.
SEED ?= 1
chaos:
	$(GO) test -count=1 -tags chaos -run WallClock ./appnode/node
	@mkdir -p $(BIN)
	$(GO) build -tags chaos -o $(BIN)/appnode-chaos ./appnode
	$(GO) build -o $(BIN)/chaos ./appnode/chaos/cmd/chaos
	flock -o $(BENCH_LOCK) $(BIN)/chaos -appnode $(BIN)/appnode-chaos -seed $(SEED) -dir $(BIN)/chaos-run

lab-status:
	@[ -x $(BIN)/lab ] || $(GO) build -o $(BIN)/lab ./lab
	$(BIN)/lab status

# install puts the binaries in $(PREFIX)/bin, the units in
# /etc/systemd/system and the example configs in /etc/ringfront (never
# over a config that is already there). DESTDIR stages a package.
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/systemd/system $(DESTDIR)/etc/ringfront
	for d in $(DAEMONS); do [ ! -x $(BIN)/$$d ] || install -m 0755 $(BIN)/$$d $(DESTDIR)$(PREFIX)/bin/$$d; done
	install -m 0644 systemd/*.service $(DESTDIR)/etc/systemd/system/
	for f in configs/*.yaml; do \
		dst=$(DESTDIR)/etc/ringfront/$$(basename $$f); \
		[ -e $$dst ] && echo "keeping existing $$dst" || install -m 0640 $$f $$dst; \
	done
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "installed; edit /etc/ringfront/*.yaml, then: systemctl enable --now dnslb (or vipwatch, appnode)"

clean:
	rm -rf $(BIN)

# bench-failover runs vipwatch's and keepalived's failover drills side by
# side in network namespaces (root needed), under a lock so that only one
# benchmark runs on the machine at a time.
BENCH_LOCK ?= /tmp/ringfront-bench.lock
.PHONY: bench-failover
bench-failover: vipwatch
	flock -o $(BENCH_LOCK) $(GO) run ./bench/failover -vipwatch $(BIN)/vipwatch -n 10
# bench-appnode measures appnode on a 3-member loopback cluster beside
# nginx (bench/appnode/main.go says what). On a shared machine run it as
# `flock -o $(BENCH_LOCK) make bench-appnode`.
.PHONY: bench-appnode
bench-appnode: appnode
	$(GO) run ./bench/appnode -appnode $(BIN)/appnode

# bench-appnode-replication measures posts with replicas 1, 2 and 3 and
# reads with a member dead.
.PHONY: bench-appnode-replication
bench-appnode-replication: appnode
	$(GO) run ./bench/appnode -appnode $(BIN)/appnode -replication

# bench-appnode-fanout measures fan-out on write: timeline reads before
# (read-time merge of 100 followees) and after (inbox scan), and post
# latency for authors with 1, 1000 and 20000 followers. On a shared
# machine: `flock -o $(BENCH_LOCK) make bench-appnode-fanout`.
.PHONY: bench-appnode-fanout
bench-appnode-fanout: appnode
	$(GO) run ./bench/appnode -appnode $(BIN)/appnode -fanout
