# xtcp_uring — `make run` and `make test` install whatever is missing, then run.
# Stamps in .make/ keep a second call quick when nothing changed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMPS := .make
APT_PACKAGES := liburing-dev iproute2 util-linux gcc libc6-dev
# Only the suite uses these: TLS peers (openssl), runc containers, the dashboard's browser test.
TEST_APT_PACKAGES := openssl runc chromium
# Named after the package list, so adding a package checks again on machines already set up.
APT_STAMP := $(STAMPS)/apt-$(shell echo $(APT_PACKAGES) | cksum | cut -d' ' -f1)
TEST_APT_STAMP := $(STAMPS)/apt-test-$(shell echo $(TEST_APT_PACKAGES) | cksum | cut -d' ' -f1)
# What each command needs (pyproject.toml's extras): `make run` the runtime and its default store
# only (chDB, /metrics, uvloop); the suite and the benchmarks add theirs on their first call.
RUN_EXTRAS := chdb,metrics,fast
TEST_EXTRAS := $(RUN_EXTRAS),test,kafka,bench
BENCH_EXTRAS := $(RUN_EXTRAS),bench
NATIVE_SOURCES := $(wildcard csrc/*.c csrc/*.h csrc/generated/*.h) cffi_build.py setup.py

# Flags for the daemon; see `python -m xtcp_uring --help`.
RUN_ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test install bench fuzz clean generate

run: $(STAMPS)/native
	$(VENV)/bin/xtcp-uring $(RUN_ARGS)

test: $(STAMPS)/native $(STAMPS)/deps-test
	$(PY) tools/gen_schema.py --check
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMPS)/native $(STAMPS)/deps-bench
	$(PY) -m benchmarks $(or $(BENCH_ARGS),--scenario big --rounds 10 --json)

# Under AddressSanitizer + UBSan, driven by atheris, FUZZ_RUNS inputs per target: `decoder`
# (xtcp_decode and the encoder on one buffer) and `ring` (the io_uring chunk path: scan, decode
# thread or inline decode, encode, checked against the plain decoder). The sanitized extension
# is built beside the checkout (build/fuzz) so the normal one stays.
FUZZ_RUNS ?= 1000000
FUZZ_TARGETS ?= decoder ring
FUZZ_DIR := build/fuzz
fuzz: install
	@command -v clang >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null
	$(PIP) install atheris
	rm -rf $(FUZZ_DIR) && mkdir -p $(FUZZ_DIR)/xtcp_uring
	ln -s ../../csrc $(FUZZ_DIR)/csrc && cp -r xtcp_uring $(FUZZ_DIR)/ && rm -f $(FUZZ_DIR)/xtcp_uring/_native*
	cd $(FUZZ_DIR) && CC=clang LDSHARED="clang -shared" XTCP_SANITIZE=fuzz ../../$(PY) -c "import sys; \
	  sys.path.insert(0, '../..'); from cffi_build import ffibuilder; ffibuilder.compile(tmpdir='.')"
	for target in $(FUZZ_TARGETS); do \
	  PYTHONPATH=$(FUZZ_DIR) ASAN_OPTIONS=detect_leaks=0 \
	  LD_PRELOAD="$$($(PY) -c 'import atheris; print(atheris.path())')/asan_with_fuzzer.so" \
	  $(PY) tests/fuzz/fuzz_$$target.py -runs=$(FUZZ_RUNS) -print_final_stats=1 $(FUZZ_ARGS) || exit 1; done

generate: $(STAMPS)/deps-run
	$(PY) tools/gen_schema.py

# A developer's checkout: what `make test` needs (the runtime, every extra the suite exercises).
install: $(STAMPS)/native $(STAMPS)/deps-test

$(APT_STAMP):
	@mkdir -p $(STAMPS)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

$(TEST_APT_STAMP): | $(APT_STAMP)
	@mkdir -p $(STAMPS)
	@missing=$$(for p in $(TEST_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

$(PY): | $(APT_STAMP)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel cffi

# The dependencies alone (read from pyproject.toml) of each set of extras: installing the package
# here as well would build the extension, and the rule below builds it again.
define requirements
	$(PY) -c 'import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	  print("\n".join(p["dependencies"] + [d for e in sys.argv[1].split(",") for d in p["optional-dependencies"][e]]))' \
	  $(1) > $(2)
	$(PIP) install -r $(2)
endef

$(STAMPS)/deps-run: pyproject.toml $(PY) | $(APT_STAMP)
	$(PIP) install setuptools wheel cffi
	$(call requirements,$(RUN_EXTRAS),$(STAMPS)/requirements-run.txt)
	@touch $@

$(STAMPS)/deps-test: pyproject.toml $(STAMPS)/deps-run | $(TEST_APT_STAMP)
	$(call requirements,$(TEST_EXTRAS),$(STAMPS)/requirements-test.txt)
	@touch $@

$(STAMPS)/deps-bench: pyproject.toml $(STAMPS)/deps-run
	$(call requirements,$(BENCH_EXTRAS),$(STAMPS)/requirements-bench.txt)
	@touch $@

# The one place the extension is built: once per change of its sources (or of the runtime deps).
$(STAMPS)/native: $(NATIVE_SOURCES) $(STAMPS)/deps-run
	$(PIP) install -e . --no-build-isolation --no-deps
	@touch $@

clean:
	rm -rf build $(STAMPS) xtcp_uring/_native*.so xtcp_uring/_native.c *.egg-info
