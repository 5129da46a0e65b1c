# kiln: `make run` serves the embedded default, `make test` runs every suite.

FLAVOR		?= dev
BUILD		:= .build/$(FLAVOR)/kiln
DEBS		:= kore libyajl-dev libcurl4-openssl-dev libpq-dev libssl-dev \
		   libcmocka-dev postgresql postgresql-contrib \
		   ca-certificates curl procps chromium libnss3-tools clang \
		   libclang-rt-14-dev wrk nginx-light util-linux \
		   debhelper dpkg-dev fakeroot lintian mandoc systemd python3
SRCS		:= $(wildcard src/*.c src/*.h assets/*) conf/build.conf \
		   conf/kiln.conf
KORE_SRC	:= .build/kore-src
KORE_STAMP	:= $(KORE_SRC)/.kiln-patches
PATCHES		:= $(sort $(wildcard conf/patches/*.patch))

# ./kiln is of one flavor at a time: another flavor rebuilds it (not
# make deb, which builds in a copy of the tree and leaves ./kiln alone).
ifneq ($(MAKECMDGOALS),deb)
ifneq ($(shell cat .build/flavor 2>/dev/null),$(FLAVOR))
$(shell mkdir -p .build && echo $(FLAVOR) > .build/flavor && rm -f kiln)
endif
endif

.PHONY: all deps deps-apt deps-npm build run test test-unit \
	test-integration test-fuzz fuzz bench deps-bench asan clean \
	install deb

# make install: PREFIX (/usr/local), DESTDIR; the configuration goes to
# SYSCONFDIR/kiln, the unit to UNITDIR (docs/operations.md, Install).
PREFIX		?= /usr/local
SYSCONFDIR	?= /etc
SBINDIR		?= $(PREFIX)/sbin
DATADIR		?= $(PREFIX)/share
MANDIR		?= $(DATADIR)/man
UNITDIR		?= $(PREFIX)/lib/systemd/system
VERSION		:= $(shell sed -n 's/^\#define KILN_VERSION[^"]*"\(.*\)"/\1/p' \
		   src/kiln.h)
DEB_TREE	:= Makefile kore.conf README.md src conf assets migrations \
		   docs debian

FUZZ_SECONDS	?= 60

all: build

deps: deps-apt deps-npm

deps-apt:
	@missing=""; for p in $(DEBS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | \
		    grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		    apt-get install -y -qq --no-install-recommends $$missing; \
	fi

deps-npm: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

build: kiln

# Kore's own source, copied and patched (conf/patches: TLS under OpenSSL 3).
$(KORE_STAMP): conf/kore-source.sh $(PATCHES)
	bash conf/kore-source.sh $(CURDIR)/$(KORE_SRC)

kiln: $(SRCS) $(KORE_STAMP)
	@mkdir -p $(BUILD)
	@for d in src conf assets; do \
		ln -sfn $(CURDIR)/$$d $(BUILD)/$$d; \
	done
	cd $(BUILD) && kodev flavor $(FLAVOR) >/dev/null && \
	    KORE_SOURCE=$(CURDIR)/$(KORE_SRC) kodev build
	cp $(BUILD)/kiln kiln.new && mv -f kiln.new kiln

run: deps build
	bash conf/embedded.sh

test: deps
	$(MAKE) --no-print-directory build
	bash tests/run-all.sh

# Benchmarks against their baselines (bench/README.md); not in make test.
BENCH_DEBS	:= wrk nginx-light curl util-linux procps

deps-bench:
	@missing=""; for p in $(BENCH_DEBS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | \
		    grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		    apt-get install -y -qq --no-install-recommends $$missing; \
	fi

bench: deps deps-bench
	$(MAKE) --no-print-directory build
	bash bench/run.sh

# libFuzzer harnesses of the parsers: a short smoke in `make test`, a
# bounded run here (FUZZ_SECONDS each; FUZZ_RUNS=N for a count instead).
fuzz: deps
	$(MAKE) --no-print-directory -C tests/fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

test-fuzz:
	$(MAKE) --no-print-directory -C tests/fuzz smoke

test-unit:
	$(MAKE) -C tests/unit check

# The whole suite against the ASan+UBSan flavor (sanitizer reports in any
# kiln log count as failures), then back to the dev flavor.
asan: deps
	$(MAKE) --no-print-directory FLAVOR=asan build
	SAN=1 bash tests/run-all.sh; rc=$$?; \
	    $(MAKE) --no-print-directory FLAVOR=dev build >/dev/null; exit $$rc

install: build
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/kiln \
	    $(DESTDIR)$(DATADIR)/kiln/migrations $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR)
	install -m 0755 kiln $(DESTDIR)$(SBINDIR)/kiln
	install -m 0644 kore.conf $(DESTDIR)$(SYSCONFDIR)/kiln/kore.conf
	install -m 0644 conf/kiln.env $(DESTDIR)$(SYSCONFDIR)/kiln/kiln.env
	install -m 0644 migrations/*.sql $(DESTDIR)$(DATADIR)/kiln/migrations
	install -m 0644 docs/man/kiln.8 $(DESTDIR)$(MANDIR)/man8/kiln.8
	install -m 0644 docs/man/kiln.env.5 $(DESTDIR)$(MANDIR)/man5/kiln.env.5
	sed -e 's,/usr/sbin/kiln,$(SBINDIR)/kiln,g' \
	    -e 's,/etc/kiln,$(SYSCONFDIR)/kiln,g' conf/kiln.service \
	    > $(DESTDIR)$(UNITDIR)/kiln.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/kiln.service

# The Debian package, built by dpkg-buildpackage from a copy of the tree
# (so ./kiln keeps its flavor), left in .build/deb with its lintian report.
deb:
	rm -rf .build/deb && mkdir -p .build/deb/kiln-$(VERSION)
	tar -cf - $(DEB_TREE) | tar -xf - -C .build/deb/kiln-$(VERSION)
	cd .build/deb/kiln-$(VERSION) && \
	    dpkg-buildpackage -b -us -uc >../build.log 2>&1 || \
	    { tail -40 ../build.log; exit 1; }
	lintian --info .build/deb/kiln_$(VERSION)_*.changes \
	    > .build/deb/lintian.txt 2>&1; cat .build/deb/lintian.txt
	@ls .build/deb/*.deb

clean:
	rm -rf .build kiln tests/unit/build tests/fuzz/build
