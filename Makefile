PY ?= .venv/bin/python
TINY ?= assets/tiny

.PHONY: setup test test-fast test-learning lint format tiny demo bench paper clean

setup:            ## install everything into .venv (idempotent)
	bash setup.sh

test:             ## the full test suite (what CI runs)
	$(PY) -m pytest -q

test-fast:        ## skip the slow end-to-end tests
	$(PY) -m pytest -q -m "not slow"

test-learning:    ## the learning tests alone: each estimator/engine raises a learnable reward (about 5 min on 2 cores)
	$(PY) -m pytest -q tests/trainer/test_learning.py

lint:             ## ruff lint + format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format:
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

demo:             ## self-rewarded GRPO on the embedded tiny model, on the CPU
	bash train_examples/0-tiny_selfReward_cpu.sh

bench:            ## benchmarks 1-4 on this machine (TRL goes into .bench-deps, not .venv); rewrites BENCHMARKS.md
	$(PY) -m pip install --isolated --disable-pip-version-check -q --no-deps --upgrade --target .bench-deps -r bench/requirements.txt
	$(PY) -m bench

paper:            ## the paper's finding in miniature: see-think GRPO vs self-reward v1/v2, 3 seeds (about 30 min on 2 cores); rewrites its BENCHMARKS.md section
	$(PY) -m bench paper

tiny:             ## generate the embedded tiny model + synthetic dataset
	$(PY) -m verl.tiny --out $(TINY)

clean:
	rm -rf .pytest_cache .ruff_cache
