# The two commands a fresh clone needs: `make demo` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-learning test-ray test-docs test-all mutation lint bench clean

$(STAMP): pyproject.toml scripts/setup_venv.sh
	VENV=$(VENV) bash scripts/setup_venv.sh

install: $(STAMP)

## Install, then train PPO on CartPole-v1 until solved, evaluate it, and draw its learning curve.
demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/proxrl train ppo --config configs/ppo_cartpole.yaml --set stop_return=475 --run-dir runs/demo \
		--eval-episodes 20
	$(BIN)/proxrl plot runs/demo --out runs/demo/curve.png --title "PPO on CartPole-v1"

## The default test tier (everything but the learning thresholds), ~2 minutes on 2 cores. Every test runs torch on
## one thread (tests/conftest.py), so pytest-xdist spreads them over one worker per core (PYTEST_WORKERS=0: serial).
PYTEST_WORKERS ?= auto
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS))
test: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST)

## Seeded learning thresholds (slow; CI runs them too), the Ray ones excepted (make test-ray runs those). Two
## xdist workers: each test runs its seeds in a pool of two processes, every one on one torch and one BLAS thread
## (proxrl.devices.limit_threads), so four processes share the two cores without spinning on each other; the
## GRPO tests, the longest, come first in tests/test_learning.py so that no worker is left with them at the end.
test-learning: $(STAMP)
	$(BIN)/python -m pytest -q -m 'learning and not ray' $(XDIST) $(PYTEST_ARGS)

## Runners on a local one-node Ray cluster (loopback only), their learning tests included (~4 minutes; CI runs
## them too).
test-ray: $(STAMP)
	$(BIN)/python -m pytest -q -m ray $(PYTEST_ARGS)

## Every command block of README.md and docs/ run as written, with budgets shrunk (tests/test_docs.py), and the
## further CLI-by-subprocess tests (marker slow); CI runs them.
test-docs: $(STAMP)
	$(BIN)/python -m pytest -q -m '(docs or slow) and not ray' $(XDIST) $(PYTEST_ARGS)

test-all: test test-ray test-docs test-learning

## Mutation testing (docs/testing.md): each equation-level mutation of scripts/mutation.py applied to a copy of the
## repository and the default tier run against it; MUTATION_ARGS="--only ID ..." or "--module grpo" for a subset.
mutation: $(STAMP)
	$(BIN)/python scripts/mutation.py --markdown docs/testing.md $(MUTATION_ARGS)

## PPO on CartPole-v1 side by side with Stable-Baselines3 (BENCH_ARGS="--cleanrl PATH/ppo.py" adds CleanRL).
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/cartpole_vs_sb3.py $(BENCH_ARGS)

## ruff (lint with the C901 complexity limit, and the formatter's check), and mypy --strict over the whole package
## (pyproject.toml's [tool.mypy]: no file list).
lint: $(STAMP)
	$(BIN)/ruff check proxrl tests benchmarks scripts
	$(BIN)/ruff format --check proxrl tests benchmarks scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs *.egg-info
