# The README's commands. `make serve` and `make test` work from a fresh clone, in either
# order: two stamps, one per install. `make serve` installs what serving needs
# (SERVE_EXTRAS, the server alone by default: `make serve SERVE_EXTRAS=postgres,s3` for a
# node on PostgreSQL and S3); `make install` (test, check, ...) installs everything, which
# serving needs too, so a full install satisfies `make serve` as it is.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SERVE_EXTRAS ?= server
SERVE_STAMP := $(VENV)/.serve-stamp-$(SERVE_EXTRAS)
PYTEST_ARGS ?=

.PHONY: install serve dist wheelhouse test test-fast fuzz mutate check lint format typecheck imports bench profile soak system-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,test,dev,postgres,s3]'
	touch $(STAMP)

$(SERVE_STAMP): pyproject.toml
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then \
		touch $@; \
	else \
		set -e; \
		$(PYTHON) -m venv $(VENV); \
		$(BIN)/python -m pip install --quiet --upgrade pip; \
		$(BIN)/python -m pip install --quiet -e '.[$(SERVE_EXTRAS)]'; \
		touch $@; \
	fi

serve: $(SERVE_STAMP)
	$(BIN)/berkas serve

# A wheel and an sdist in dist/ (berkas is on no package index: README "Installing"),
# built by the standard `build` frontend (the dev extra) in an isolated environment.
dist: install
	rm -f dist/berkas-*.whl dist/berkas-*.tar.gz
	$(BIN)/python -m build --outdir dist .

# Every wheel a node needs, for a host with no package index at all:
# pip install --no-index --find-links dist/wheelhouse 'berkas[server]' (README "Installing").
wheelhouse: dist
	$(BIN)/python -m pip wheel --quiet --wheel-dir dist/wheelhouse \
		"$$(ls dist/berkas-*.whl)[server,postgres,s3]"

# Everything: unit, contract (SQLite + PostgreSQL) and end-to-end tests against a real
# `berkas serve` on loopback. PostgreSQL is started by the tests themselves (throwaway
# cluster); `make system-deps` installs it on Debian.
# --durations=25: the CI log shows where the run's minutes go.
test: install
	$(BIN)/pytest --cov --cov-report=term:skip-covered --durations=25 $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -m "not e2e and not slow" $(PYTEST_ARGS)

# schemathesis with many more examples than `make test` gives it (README "Tests").
FUZZ_EXAMPLES ?= 500
fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/fuzz $(PYTEST_ARGS)

# Mutation testing of the security core (issue 19): mutmut over core/egress, signing, links
# and envelope with their unit tests only ([tool.mutmut] in pyproject.toml), a score per
# module and the survivors not judged harmless (scripts/mutate.py). Not part of test or CI.
mutate: install
	$(BIN)/python scripts/mutate.py

check: lint typecheck imports

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

typecheck: install
	$(BIN)/mypy

imports: install
	$(BIN)/lint-imports

# berkas vs the careful peer under wrk (issue 8), plus the baseline ratios; see
# bench/README.md. Installs wrk (Debian) and the `bench` extra if missing.
BENCH_STAMP := $(VENV)/.bench-stamp
bench: install $(BENCH_STAMP)
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	@command -v taskset >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux >/dev/null; }
	$(BIN)/python -m bench

# py-spy samples a loaded `berkas serve` (200 KB uploads under wrk) and sums its stacks
# into buckets (bench/profile.py): the profile summary in README "Performance".
profile: install $(BENCH_STAMP)
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m bench.profile

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

# Mixed partner traffic against a real `berkas serve` for SOAK_SECONDS (default 600):
# RSS every 30 s, then statuses, p50/p99 per operation and PASS/FAIL (bench/soak.py).
soak: install
	$(BIN)/python -m bench.soak

# Debian packages the integration tests use: PostgreSQL server binaries, and a Ceph
# monitor, OSD and RADOS gateway for the S3 blob store (tests/support/rgw.py).
CEPH_PACKAGES := ceph-mon ceph-osd radosgw ceph-common
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi
	@if ! command -v radosgw >/dev/null 2>&1 || ! command -v ceph-osd >/dev/null 2>&1 \
		|| ! command -v ceph-mon >/dev/null 2>&1 || ! command -v radosgw-admin >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $(CEPH_PACKAGES) >/dev/null; \
	fi
	@# Headless Chromium renders /docs offline (tests/e2e/test_docs.py).
	@if ! command -v chromium >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium >/dev/null; \
	fi
	@# The README's curl walkthrough, run by tests/e2e/test_readme.py (on the Debian 12
	@# image already; a minimal Debian has neither).
	@if ! command -v curl >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends curl openssl >/dev/null; \
	fi
	@# systemd-analyze checks deploy/berkas.service (tests/test_deploy.py).
	@if ! command -v systemd-analyze >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends systemd >/dev/null; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov mutants dist
