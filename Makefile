# ringfront — build, test, lint, benchmarks and the lab.
# `make test` is the README's test command and what CI runs.

GO       ?= go
BIN      := bin
DAEMONS  := dnslb vipwatch appnode
GOFLAGS  ?= -trimpath

# The version stamped into the binaries (--version, the *_build_info
# metrics) and the packages: `git describe` (packaging/version says the
# format), unless given on the command line (make deb VERSION=v1.2.3).
# Dated by the last commit, so a build is reproducible.
ifneq ($(origin VERSION),command line)
VERSION := $(shell packaging/version)
endif
ifneq ($(origin DEB_VERSION),command line)
DEB_VERSION := $(shell packaging/version --deb $(VERSION))
endif
REVISION := $(shell git rev-parse HEAD 2>/dev/null)
BRANCH   := $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
ifeq ($(origin SOURCE_DATE_EPOCH),undefined)
SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
endif
export SOURCE_DATE_EPOCH
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -s -w -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) \
	-X $(VERSION_PKG).BuildDate=$(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)

.PHONY: all build test test-short lint deps fuzz units boottest bench-dns bench-scale lab lab-down lab-status drill drills \
	stage deb install version chaos chaostest monitoring clean $(DAEMONS)

all: build

# build makes static binaries (no cgo: nothing to install beside them).
build: $(DAEMONS)

$(DAEMONS):
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/$@ ./$@

version:
	@echo $(VERSION)

# test runs every test: unit, loopback integration, and (as root) the
# network-namespace tests. Non-root runs skip the namespace tests with a
# message saying so.
test: deps lint units
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race -timeout 20m ./internal/...
	$(MAKE) chaostest
	$(MAKE) boottest
	$(MAKE) fuzz

# chaostest is the bounded chaos run (appnode/chaos: each fault once,
# both profiles, about two minutes), on its own: five daemons and eight
# clients beside the other tests would make both slow and flaky.
chaostest:
	$(GO) test -tags chaostest -count=1 -timeout 10m -v -run TestChaos ./appnode/chaos

# boottest builds the packages, installs them into a minimal Debian tree
# and boots it under systemd (systemd-nspawn, root): every unit is
# checked from inside (packaging/boottest says what). The tree is cached
# in $(BOOTTEST_CACHE) and made again (mmdebstrap) when missing.
BOOTTEST_CACHE ?= /var/cache/ringfront/boottest
boottest:
	BOOTTEST_CACHE=$(BOOTTEST_CACHE) $(GO) test -tags boottest -count=1 -timeout 15m -v ./packaging/boottest

# monitoring checks monitoring/: promtool check and test rules (every
# alert on recorded series), the example Prometheus config, and that
# every metric the rules and dashboards use is exported by the daemons
# as they run (vipwatch's only as root). make test runs it with the rest.
monitoring:
	$(GO) test -count=1 ./monitoring

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
	./vipwatch/fsm:FuzzHeartbeat:60000 \
	./vipwatch/iface:FuzzStateFile:15000 ./vipwatch/probe:FuzzAsk:400 \
	./appnode/server:FuzzAPI:12000 ./appnode/ring:FuzzRing:80000 \
	./appnode/feed:FuzzParseID:200000 ./appnode/feed:FuzzValidate:100000 \
	./appnode/transport:FuzzLinkFrame:20000 ./appnode/server:FuzzFanoutInternal:30000
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
	$(GO) vet -tags boottest ./packaging/boottest

# deps installs the Debian packages the tests and benchmarks use.
deps:
	.ci/deps

bench-dns: build
	bench/dns/run

# bench-scale prints the figures of the README's "How far it goes": the
# ring at 20 to 20,000 members beside jump hash and Maglev, dnslb's
# answers for 20 to 1,000 frontends, memberlist at 5 to 200 members
# (bench/scale), and the redirect tier on one CPU against nginx
# (bench/appnode -tier). About 7 minutes here; it takes the benchmark lock
# itself (do not run it under flock). SCALE_FLAGS and TIER_FLAGS pass
# flags on (SCALE_FLAGS="-parts ring -members 20,200").
SCALE_FLAGS ?=
TIER_FLAGS ?=
bench-scale: dnslb appnode
	@command -v wrk >/dev/null && command -v dnsperf >/dev/null && [ -x /usr/sbin/nginx ] || .ci/deps
	$(GO) build -o $(BIN)/bench-scale ./bench/scale
	$(GO) build -o $(BIN)/bench-appnode ./bench/appnode
	flock -o $(BENCH_LOCK) sh -c '$(BIN)/bench-scale -dnslb $(BIN)/dnslb -server-cpu 0 -load-cpu 1 $(SCALE_FLAGS) && \
		$(BIN)/bench-appnode -appnode $(BIN)/appnode -tier -server-cpu 0 -load-cpu 1 $(TIER_FLAGS)'

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

# stage lays out each daemon's installed tree in $(STAGE)/DAEMON
# (packaging/stage): binary, unit, man pages, completions, docs, config.
STAGE := build/stage
stage: build
	@for d in $(DAEMONS); do packaging/stage $$d $(BIN) $(STAGE)/$$d || exit 1; done

# deb builds one Debian package per daemon into $(DIST) with nfpm (a Go
# tool pinned in go.mod): ringfront-dnslb, ringfront-vipwatch,
# ringfront-appnode. Install with `apt install ./dist/ringfront-*.deb`.
DIST     := dist
DEB_ARCH := $(shell $(GO) env GOARCH)
DESC_dnslb    := ringfront dnslb: health-checked authoritative DNS
DESC_vipwatch := ringfront vipwatch: paired VIP failover with gratuitous ARP
DESC_appnode  := ringfront appnode: a feed service sharded on an md5 ring
deb: stage
	@mkdir -p $(DIST)
	@for d in $(DAEMONS); do \
		case $$d in dnslb) desc="$(DESC_dnslb)";; vipwatch) desc="$(DESC_vipwatch)";; appnode) desc="$(DESC_appnode)";; esac; \
		DAEMON=$$d STAGE=$(STAGE)/$$d DEB_VERSION=$(DEB_VERSION) DEB_ARCH=$(DEB_ARCH) DESCRIPTION="$$desc" \
			$(GO) tool nfpm package --config packaging/nfpm.yaml --packager deb --target $(DIST)/ || exit 1; \
	done

# install installs the packages' tree for people without dpkg: binaries
# in /usr/bin, units in /usr/lib/systemd/system, man pages, completions,
# docs, and the configs in /etc/ringfront (never over a config that is
# already there). DESTDIR stages it elsewhere.
install: stage
	@for d in $(DAEMONS); do packaging/install $$d $(STAGE)/$$d "$(DESTDIR)" || exit 1; done
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "installed; edit /etc/ringfront/DAEMON.yaml (secrets in /etc/ringfront/DAEMON/), then: systemctl enable --now DAEMON"

clean:
	rm -rf $(BIN) build $(DIST)

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

# bench-appnode-backup measures appnode backup of a member holding a
# million posts, its restore, and its catch-up (about 6 minutes). On a
# shared machine: `flock -o $(BENCH_LOCK) make bench-appnode-backup`.
.PHONY: bench-appnode-backup
bench-appnode-backup: appnode
	$(GO) run ./bench/appnode -appnode $(BIN)/appnode -backup
