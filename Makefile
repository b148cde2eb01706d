# Every target sets up what it needs on first use: a virtual environment for the code and tests
# (.venv) and one for the SAM CLI, which pins its own boto3 (.venv-sam).
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
export PYTHONPATH := src/handler:tests
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: demo test test-tomorrow check lint types template bench bench-large soak clean

$(VENV)/.installed: requirements-dev.txt src/handler/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(SAM_VENV)/.installed: requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	touch $@

demo: $(VENV)/.installed ## the ecr-sweeper command on an embedded (moto) registry: plan, sweep, explain
	$(PY) scripts/demo.py

test: $(VENV)/.installed ## the whole test suite (no network, no AWS account)
	$(PY) -m pytest

test-tomorrow: $(VENV)/.installed ## the suite as of tomorrow: nothing may depend on the date
	SWEEPER_TEST_DAYS_AHEAD=1 $(PY) -m pytest

soak: $(VENV)/.installed ## the property and fault tests with many more examples (minutes)
	HYPOTHESIS_PROFILE=soak $(PY) -m pytest tests/property tests/faults

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts

types: $(VENV)/.installed
	$(VENV)/bin/mypy src/handler tests bench

template: $(SAM_VENV)/.installed
	$(SAM) validate --lint --region $(AWS_DEFAULT_REGION)

check: lint types template test test-tomorrow ## everything CI runs (test includes the small benchmark as a smoke run)

# Benchmarks print their figures and write them as JSON (bench-results-*.json); they assert no
# timing. See the README's performance section for what they measure and the figures.
bench: $(VENV)/.installed ## the registry benchmark at the small size (seconds)
	$(PY) -m bench.registry_bench --size small

bench-large: $(VENV)/.installed ## 100,000+ manifests over 1,000 repositories; make_plan over 1,000,000
	$(PY) -m bench.registry_bench --size large
	$(PY) -m bench.plan_bench

clean:
	rm -rf $(VENV) $(SAM_VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam
