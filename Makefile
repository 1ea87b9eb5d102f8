# m_websocket for InspIRCd 3 and 4: a Rust protocol core behind a thin C++ shim.
#
#   make            build m_websocket.so (INSPIRCD=4: target/inspircd4/m_websocket.so,
#                   for Debian 13's InspIRCd 4.7, unpacked under target/inspircd4 first)
#   make install    install it (DESTDIR, MODULEDIR)
#   make run        install missing Debian packages, build, start a real InspIRCd with
#                   the module and an example configuration in the foreground
#   make lint       cargo fmt --check and clippy -D warnings (Cargo.toml's [lints])
#   make test       install missing Debian packages, lint, build for both servers, then
#                   run every suite at once (tools/test-all.sh: unit tests, the
#                   integration suite with InspIRCd 3 and with InspIRCd 4, on InspIRCd
#                   built from INSPIRCD_SOURCE and INSPIRCD_SMOKE_SOURCES if given, the
#                   Autobahn conformance suite); logs in target/test-logs/; it ends with
#                   each suite's result and the servers it ran and those it skipped
#   make intree INSPIRCD_SOURCE=TREE  put the module into an InspIRCd source tree for
#                   InspIRCd's own ./configure and make install (intree/)
#   make bench      codec microbenchmarks, then tools/loadbench: this module vs the stock
#                   one vs plain TCP in the same InspIRCd, in CPU seconds and then in
#                   instructions under callgrind (about 10 minutes; 2 cores)
#   make memprofile heap per idle connection by allocation site (valgrind massif)
#   make fuzz       run each fuzz target in fuzz/ for FUZZ_SECONDS (default 60)
#   make conformance     Autobahn|Testsuite against the session core (conformance/run.sh --all)
#   make conformance-ci  the same (--ci, the name make test uses)
#   make dist       the source tarball, target/dist/inspircd-websocket-VERSION.tar.xz, with
#                   the crates vendored: builds with `make` and no network access
#   make package-test  the tarball and the Debian packages (debian/) for Debian 12
#                   (InspIRCd 3.15) and 13 (4.7), each built offline with Debian's Rust
#                   in a clean root of its release, checked with lintian, installed into
#                   a clean root of its release and run
#                   (tools/package/test.sh; needs root, mmdebstrap, debhelper, lintian)
#   make clean
#
# INSPIRCD_SOURCE=DIR or FILE builds for an InspIRCd built from source: DIR an InspIRCd
# 3 (3.15 on) or 4 source tree, configured or not, FILE its release tarball (unpacked
# once into the cache of tools/inspircd-source/source.sh). The module is
# target/NAME/m_websocket.so (NAME: the tree's directory); `make install` puts it into
# the tree's configured module directory, or MODULEDIR. With `make test` it also runs
# the integration suite on that InspIRCd built from the same source (cached outside the
# clone) and the in-tree build (intree/); INSPIRCD_SMOKE_SOURCES (tarballs or trees,
# space-separated) get a smoke test each (tools/inspircd-source/test.sh).
#
# Packagers: INSPIRCD_INCLUDE_DIR points at the InspIRCd 3 or 4 headers (default
# /usr/include/inspircd; their config.h says which); for InspIRCd 4 also
# INSPIRCD_FMT_DIR at the {fmt} headers of the same InspIRCd source (vendor/fmt).
# MODULEDIR defaults to the INSPIRCD_MODULE_PATH those headers were configured with. A
# module is built per InspIRCd minor version (the ABI number comes from the headers).
#
# INSPIRCD=4 builds, runs and tests with Debian 13's InspIRCd 4.7 unpacked under
# target/inspircd4 by tools/inspircd4/fetch.sh (needs mmdebstrap), without touching the
# host's packages; its build has its own cargo target directory.

INSPIRCD ?= 3
INSPIRCD4_DIR := $(CURDIR)/target/inspircd4
INSPIRCD4_READY := $(INSPIRCD4_DIR)/ready
INSPIRCD_SOURCE ?=
INSPIRCD_SMOKE_SOURCES ?=
# Not in the environment of recipes: cargo test and the sub-makes for the Debian servers
# must not build against the source tree.
unexport INSPIRCD_SOURCE
ifneq ($(INSPIRCD_SOURCE),)
# A tree is used where it is; a tarball is unpacked into the cache (the script is not in
# the source tarball of make dist: there, give a tree).
INSPIRCD_TREE := $(if $(wildcard $(INSPIRCD_SOURCE)/src/version.sh),$(abspath $(INSPIRCD_SOURCE)),$(shell tools/inspircd-source/source.sh tree $(INSPIRCD_SOURCE)))
ifeq ($(INSPIRCD_TREE),)
$(error INSPIRCD_SOURCE=$(INSPIRCD_SOURCE) is neither an InspIRCd source tree nor a tarball of one)
endif
SOURCE_BUILD ?= target/$(notdir $(INSPIRCD_TREE))
INSPIRCD_INCLUDE_DIR ?= $(INSPIRCD_TREE)/include
# Every source tree builds in one cargo target directory (a switch of tree rebuilds the
# C++ side and the crate, not its dependencies); the staticlib is copied out per tree
# under a lock, so that builds for two trees at once cannot mix them.
CARGO_TARGET_DIR ?= $(CURDIR)/target/inspircd-source
STATICLIB := $(SOURCE_BUILD)/libinspircd_websocket.a
MODULE := $(SOURCE_BUILD)/m_websocket.so
SYMBOLS_MODULE := $(SOURCE_BUILD)/m_websocket-symbols.so
SERVER_READY :=
RUN_SERVER :=
else ifeq ($(INSPIRCD),4)
INSPIRCD_INCLUDE_DIR ?= $(INSPIRCD4_DIR)/root/usr/include/inspircd
INSPIRCD_FMT_DIR ?= $(INSPIRCD4_DIR)/fmt
CARGO_TARGET_DIR ?= $(INSPIRCD4_DIR)/build
MODULE := target/inspircd4/m_websocket.so
SYMBOLS_MODULE := target/inspircd4/m_websocket-symbols.so
SERVER_READY := $(INSPIRCD4_READY)
RUN_SERVER := INSPIRCD_BINARY=$(INSPIRCD4_DIR)/inspircd STOCK_MODULES=$(INSPIRCD4_DIR)/root/usr/lib/inspircd/modules
else ifeq ($(INSPIRCD),3)
INSPIRCD_INCLUDE_DIR ?= /usr/include/inspircd
CARGO_TARGET_DIR ?= $(CURDIR)/target
MODULE := m_websocket.so
# For valgrind (make stress, make memprofile): not stripped, so that stacks are named.
SYMBOLS_MODULE := target/m_websocket-symbols.so
SERVER_READY :=
RUN_SERVER :=
else
$(error INSPIRCD=$(INSPIRCD): say INSPIRCD=3 or INSPIRCD=4)
endif
# What build.rs reads; set for the module's build only (not exported, so that a sub-make
# for the other server starts from its own defaults).
BUILD_ENV = $(if $(INSPIRCD_TREE),INSPIRCD_SOURCE=$(INSPIRCD_TREE)) INSPIRCD_INCLUDE_DIR=$(INSPIRCD_INCLUDE_DIR) INSPIRCD_FMT_DIR=$(INSPIRCD_FMT_DIR) CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)
# INSPIRCD also tells the test tools (the integration tests, soak, loadbench) which
# server to run.
export INSPIRCD
MODULEDIR ?= $(shell sed -n 's/^\#define INSPIRCD_MODULE_PATH "\(.*\)"/\1/p' $(INSPIRCD_INCLUDE_DIR)/config.h 2>/dev/null)
DESTDIR ?=
CARGO ?= cargo
CXX ?= g++
INSTALL ?= install

CARGO_STATICLIB := $(CARGO_TARGET_DIR)/release/libinspircd_websocket.a
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
STATICLIB ?= $(CARGO_STATICLIB)
# Extra cargo build flags; in the source tarball (make dist), which has vendor/,
# --frozen: Cargo.lock as shipped, no network.
CARGO_BUILD_FLAGS ?= $(if $(wildcard vendor/),--frozen)
# Linker flags for the module (e.g. dpkg-buildflags' LDFLAGS in debian/rules).
LDFLAGS ?=
# The system libraries the Rust standard library needs (cargo --print native-static-libs).
SYSTEM_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

# Debian packages `make run` needs: the server and its headers, a compiler, Debian 13's
# InspIRCd 4 through mmdebstrap for INSPIRCD=4, python3 to serve the chat page and
# python3-websockets for the shell client it prints.
RUN_PACKAGES := inspircd inspircd-dev g++ make python3 python3-websockets $(if $(filter 4,$(INSPIRCD)),mmdebstrap)
# And what `make test` needs beyond them (chromium and firefox-esr: the browser tests;
# nginx, its stream module and haproxy: the proxy tests; mmdebstrap: Debian 13's
# InspIRCd 4; libgnutls28-dev and pkg-config: ssl_gnutls of InspIRCd built from source;
# openssl: the tests' certificates).
TEST_PACKAGES := $(RUN_PACKAGES) openssl chromium firefox-esr nginx libnginx-mod-stream haproxy mmdebstrap \
	libgnutls28-dev pkg-config

RUN_IRC_PORT ?= 6667
RUN_WS_PORT ?= 8080
RUN_PAGE_PORT ?= 8000

.PHONY: all install run test packages test-packages clean

all: $(MODULE)

# What the static library is built from: cargo runs only when one of these is newer
# than it, so `make install` after `make` needs neither cargo (which sudo's PATH lacks
# for a rustup user) nor the network. (touch: cargo leaves the library as it was when
# nothing it reads changed.)
CORE_SOURCES := Cargo.toml Cargo.lock build.rs $(shell find src buildscript cpp include -type f 2>/dev/null) \
	$(wildcard $(INSPIRCD_INCLUDE_DIR)/config.h)

ifneq ($(INSPIRCD_SOURCE),)
$(STATICLIB): $(CORE_SOURCES)
	@mkdir -p $(SOURCE_BUILD) $(CARGO_TARGET_DIR)
	flock $(CARGO_TARGET_DIR)/.source-build.lock sh -c '$(BUILD_ENV) $(CARGO) build --release --lib $(CARGO_BUILD_FLAGS) && cp $(CARGO_STATICLIB) $@'
else
$(STATICLIB): $(CORE_SOURCES) $(SERVER_READY)
	$(BUILD_ENV) $(CARGO) build --release --lib $(CARGO_BUILD_FLAGS)
	touch $@
endif

# Debian 13's InspIRCd 4.7: server, headers and {fmt}, fetched once.
$(INSPIRCD4_READY): tools/inspircd4/fetch.sh
	tools/inspircd4/fetch.sh $(INSPIRCD4_DIR)

# Only the three symbols InspIRCd looks up are exported (cpp/exports.map).
MODULE_LINK_FLAGS = -Wl,-u,inspircd_module_init $(abspath $(STATICLIB)) \
	-Wl,--version-script=$(CURDIR)/cpp/exports.map -Wl,--gc-sections -Wl,-z,now $(SYSTEM_LIBS)
LINK_MODULE = $(CXX) -shared $(LDFLAGS) $(MODULE_LINK_FLAGS)

$(MODULE): $(STATICLIB) cpp/exports.map
	$(LINK_MODULE) -s -o $@
	@$(if $(INSPIRCD_SOURCE),echo "$@: for $$(sh $(INSPIRCD_TREE)/src/version.sh) ($(INSPIRCD_TREE))")

# For InspIRCd's own build (intree/core.sh): the staticlib, then the flags that link it
# into the module InspIRCd's make compiles.
.PHONY: staticlib link-flags
staticlib: $(STATICLIB)
link-flags:
	@echo $(MODULE_LINK_FLAGS)

# The module make builds here (tools/inspircd-source/test.sh).
.PHONY: print-module
print-module:
	@echo $(MODULE)

$(SYMBOLS_MODULE): $(STATICLIB) cpp/exports.map
	$(LINK_MODULE) -o $@

install: $(MODULE)
	@test -n "$(MODULEDIR)" || { echo "MODULEDIR is unknown (an unconfigured tree says none): set MODULEDIR=/path/to/inspircd/modules" >&2; exit 1; }
	$(INSTALL) -d $(DESTDIR)$(MODULEDIR)
	$(INSTALL) -m 0644 $(MODULE) $(DESTDIR)$(MODULEDIR)/m_websocket.so

# Installs the Debian packages when missing (as root), or says how: what running needs
# (packages), what the tests need (test-packages).
packages test-packages:
	@missing=""; for p in $(if $(filter test-packages,$@),$(TEST_PACKAGES),$(RUN_PACKAGES)); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else \
			echo "Missing Debian packages:$$missing. Run: sudo apt-get install$$missing" >&2; exit 1; \
		fi; \
	fi

run: packages
	$(MAKE) all
	$(RUN_SERVER) WS_MODULE=$(CURDIR)/$(MODULE) ./example/run.sh $(RUN_IRC_PORT) $(RUN_WS_PORT) $(RUN_PAGE_PORT)

# Formatting and lints first (Cargo.toml's [lints], clippy.toml): they fail fast.
.PHONY: lint
lint:
	$(CARGO) fmt --all -- --check
	$(BUILD_ENV) $(CARGO) clippy --all-targets --workspace $(CARGO_BUILD_FLAGS) -- -D warnings

# Lint and the module builds, then every suite at once (tools/test-all.sh): the unit
# tests, the integration suite on Debian 12's and 13's servers, Autobahn, and InspIRCd
# built from INSPIRCD_SOURCE / INSPIRCD_SMOKE_SOURCES when given; it ends with each
# suite's result and the servers it ran and skipped. (lint first, as for the Debian 12
# server whatever INSPIRCD_SOURCE says.)
test: test-packages
	$(MAKE) lint INSPIRCD=3 INSPIRCD_SOURCE=
	$(MAKE) all INSPIRCD=3 INSPIRCD_SOURCE=
	$(MAKE) all INSPIRCD=4 INSPIRCD_SOURCE=
	CARGO=$(CARGO) tools/test-all.sh "$(INSPIRCD_SOURCE)" $(INSPIRCD_SMOKE_SOURCES)

# The suite on InspIRCd built from INSPIRCD_SOURCE, the in-tree build of that source, a
# smoke test on each of INSPIRCD_SMOKE_SOURCES (tools/inspircd-source/test.sh).
.PHONY: test-source
test-source:
	CARGO=$(CARGO) tools/inspircd-source/test.sh "$(INSPIRCD_SOURCE)" $(INSPIRCD_SMOKE_SOURCES)

# Autobahn|Testsuite against an echo server on the session core (conformance/README.md).
.PHONY: conformance conformance-ci
conformance:
	./conformance/run.sh --all

conformance-ci:
	./conformance/run.sh --ci

# LOADBENCH_ARGS: e.g. --rounds 3, --before OLD.so, or --quick for a short smoke run.
# Then the same phases again under callgrind: user-space instruction counts, which
# repeat to within a few tenths of a percent (see tools/loadbench/README.md).
LOADBENCH_ARGS ?=
LOADBENCH = $(CARGO) run --release --locked -p loadbench -- --module $(CURDIR)/$(MODULE)
.PHONY: bench
bench: packages
	$(MAKE) all
	$(CARGO) bench --bench codec
	$(CARGO) bench --bench compression
	$(LOADBENCH) $(LOADBENCH_ARGS)
	@command -v valgrind >/dev/null || { echo "skipping the instruction counts: they need valgrind (apt-get install valgrind)" >&2; exit 0; }; \
		$(LOADBENCH) --callgrind --rounds 3

# Heap per idle connection by allocation site (valgrind massif), for this module, the
# stock one and plain TCP.
MEMPROFILE_CONNS ?= 400
.PHONY: memprofile
memprofile: packages
	@command -v valgrind >/dev/null || { echo "make memprofile needs valgrind: apt-get install valgrind" >&2; exit 1; }
	$(MAKE) all $(SYMBOLS_MODULE)
	python3 tools/memprofile/memprofile.py --module $(SYMBOLS_MODULE) --connections $(MEMPROFILE_CONNS)

# Puts this module into the InspIRCd source tree INSPIRCD_SOURCE, in place of its stock
# websocket module, for InspIRCd's own ./configure and make install (README: "Inside
# InspIRCd's build"): the source tarball's files (make dist, crates vendored) and
# intree/install.sh.
.PHONY: intree
intree:
	@test -d "$(INSPIRCD_SOURCE)" || { echo "make intree INSPIRCD_SOURCE=/path/to/inspircd: an InspIRCd source tree" >&2; exit 1; }
	CARGO=$(CARGO) tools/package/dist.sh --stage target/intree
	target/intree/inspircd-websocket-$(VERSION)/intree/install.sh $(INSPIRCD_SOURCE)

# The offline source tarball and the Debian packages (README: "Building the package").
.PHONY: dist package-test
dist:
	CARGO=$(CARGO) tools/package/dist.sh target/dist

package-test:
	CARGO=$(CARGO) tools/package/test.sh

clean:
	$(CARGO) clean
	rm -f $(MODULE)

# Fuzzing (BAD_INPUT row 45): each cargo-fuzz target in fuzz/ for FUZZ_SECONDS, with
# AddressSanitizer (FUZZ_SANITIZER=none for a faster run). cargo-fuzz needs nightly
# flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. New inputs go to
# fuzz/target/fuzz-corpus/ (the committed seeds in fuzz/corpus/ stay as they are); a
# crash is saved under fuzz/artifacts/. `cargo test` replays fuzz/corpus/ on stable.
FUZZ_SECONDS ?= 60
FUZZ_SANITIZER ?= address
FUZZ_TARGETS := handshake frame_header session messages compression proxy_protocol

.PHONY: fuzz
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p target/fuzz-corpus/$$t && \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s $(FUZZ_SANITIZER) $$t target/fuzz-corpus/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=10 -dict=dict/handshake.dict -print_final_stats=1 || exit 1; \
	done

# Soak and lifecycle stress against the real InspIRCd (tools/soak/README.md).
#   make soak     SOAK_CONNS concurrent WebSocket connections churned for SOAK_SECONDS;
#                 RSS, fds, every operation and every error; exit 1 on failure
#   make stress   STRESS_CYCLES UNLOADMODULE/LOADMODULE cycles, STRESS_REHASHES REHASHes
#                 under load, one valgrind memcheck run of the server (needs valgrind)
#   make handshakes  server memory with HANDSHAKE_CONNS unfinished upgrade requests in
#                 flight, then past maxhandshake (this module and stock)
SOAK_CONNS ?= 5000
SOAK_SECONDS ?= 120
STRESS_CYCLES ?= 100
STRESS_REHASHES ?= 100
SOAK_TOOL = $(CARGO) run --release --locked -p soak --

.PHONY: soak stress handshakes
soak: packages
	$(MAKE) all
	$(SOAK_TOOL) soak --module $(CURDIR)/$(MODULE) --conns $(SOAK_CONNS) --seconds $(SOAK_SECONDS)

# Memory with HANDSHAKE_CONNS unfinished upgrade requests in flight, this module vs stock.
HANDSHAKE_CONNS ?= 2000
handshakes: packages
	$(MAKE) all
	$(SOAK_TOOL) handshakes --module $(CURDIR)/$(MODULE) --conns $(HANDSHAKE_CONNS)

stress: packages
	@command -v valgrind >/dev/null || { echo "make stress needs valgrind: apt-get install valgrind" >&2; exit 1; }
	$(MAKE) all $(SYMBOLS_MODULE)
	$(SOAK_TOOL) stress --module $(CURDIR)/$(MODULE) --valgrind-module $(CURDIR)/$(SYMBOLS_MODULE) \
		--cycles $(STRESS_CYCLES) --rehashes $(STRESS_REHASHES)
