# kiln: `make run` serves the embedded default, `make test` runs every suite.

FLAVOR		?= dev
BUILD		:= .build/$(FLAVOR)/kiln
DEBS		:= kore libyajl-dev libcurl4-openssl-dev libpq-dev libssl-dev \
		   libcmocka-dev postgresql postgresql-contrib \
		   ca-certificates curl procps chromium libnss3-tools clang \
		   libclang-rt-14-dev wrk nginx-light util-linux
SRCS		:= $(wildcard src/*.c src/*.h assets/*) conf/build.conf \
		   conf/kiln.conf
KORE_SRC	:= .build/kore-src
KORE_STAMP	:= $(KORE_SRC)/.kiln-patches
PATCHES		:= $(sort $(wildcard conf/patches/*.patch))

# ./kiln is of one flavor at a time: another flavor rebuilds it.
ifneq ($(shell cat .build/flavor 2>/dev/null),$(FLAVOR))
$(shell mkdir -p .build && echo $(FLAVOR) > .build/flavor && rm -f kiln)
endif

.PHONY: all deps deps-apt deps-npm build run test test-unit \
	test-integration test-fuzz fuzz bench deps-bench asan clean

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

clean:
	rm -rf .build kiln tests/unit/build tests/fuzz/build
