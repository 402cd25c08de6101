# `make demo` runs the simulation example on the embedded PostgreSQL; `make test` runs every test.
# Both create .venv and install what they need on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast slurm-up bench bench-scale clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

setup: $(STAMP)

# --new: every `make demo` runs a fresh workflow, even when an earlier one from this file is unfinished.
demo: setup
	@$(BIN)/torc run --new examples/yaml/failure_handler_simulation.yaml; status=$$?; \
	echo; \
	echo "torc is installed in .venv: run it as .venv/bin/torc, or 'source .venv/bin/activate' and then 'torc'."; \
	echo "Try next:"; \
	echo "  .venv/bin/torc workflows status last        # counts, the failed jobs and what to do next"; \
	echo "  .venv/bin/torc logs last sim_m0_s0          # stderr and stdout of a job's latest attempt"; \
	echo "  .venv/bin/torc report last -o report.html   # timeline, resources and failures in one HTML file"; \
	exit $$status

# Brings up a one-node Slurm cluster where it can (root + apt); Slurm tests skip elsewhere.
slurm-up:
	@bash tests/slurm/cluster-up.sh || echo "slurm-up: no Slurm cluster here; Slurm tests will skip"

test: setup slurm-up
	$(BIN)/pytest -ra

test-fast: setup
	$(BIN)/pytest -ra -m "not slurm"

# Benchmarks against HyperQueue, pgbench and the machine's limits; results go to docs/benchmarks.md by hand.
bench: setup
	$(BIN)/pip install -q -e ".[test,bench]"
	$(BIN)/python -m bench all

# Issue 11's scale benchmarks (private PostgreSQL and pgbouncer; about 20 minutes): docs/scale-notes.md.
bench-scale: setup
	for b in workers idle pooler stale; do $(BIN)/python -m bench $$b || exit 1; done

clean:
	rm -rf $(VENV) torc_output .pytest_cache
