# Every target sets up what it needs on first use: a virtual environment for the code and tests
# (.venv), one for the SAM CLI, which pins its own boto3 (.venv-sam), and, where Python 3.13 is
# found, one to run the suite on the Lambda's runtime (.venv-313).
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
VENV_313 := .venv-313
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
PIP_FLAGS := --quiet --disable-pip-version-check
export PYTHONPATH := src/handler:tests
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

# Python 3.13, the Lambda's runtime: `python3.13` when it runs, else pyenv's 3.13 (pyenv's shim
# refuses to run a version not selected, though it is on the PATH); empty when there is none.
# `make PYTHON313=/path/to/python3.13` chooses one.
ifndef PYTHON313
PYTHON313 := $(shell python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null \
	|| ls -d "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13 2>/dev/null | tail -n 1)
endif
# A $(PYTHON) of 3.13 already runs the suite on it: `make check` need not run it twice.
PYTHON_IS_313 := $(shell $(PYTHON) -c 'import sys; print(sys.version_info[:2] == (3, 13) or "")' \
	2>/dev/null)

# `sam build` packages a python3.13 function: it needs python3.13 on the PATH, so say so before
# anything is installed rather than let SAM fail after minutes.
ifneq ($(filter build deploy stackset-template,$(MAKECMDGOALS)),)
ifeq ($(PYTHON313),)
$(error Python 3.13 not found: sam build packages the python3.13 Lambda and needs python3.13 on \
the PATH (or pyenv's 3.13, or make $(MAKECMDGOALS) PYTHON313=/path/to/python3.13))
endif
endif

# The samconfig.toml environment `make deploy` uses: ENV only from the command line
# (`make deploy ENV=staging`), since some shells export an ENV of their own (sh's startup file).
CONFIG_ENV := $(if $(filter command line,$(origin ENV)),$(ENV),default)

.PHONY: demo demo-cli test test-tomorrow test-313 check lint types template build deploy bench \
	bench-large soak mutate release-check clean stackset-template

# Installed in two steps: `make demo` needs only the first (runtime dependencies and moto), so a
# fresh clone shows the demo within seconds; the tools come with the first target that needs them.
# --no-compile: byte-compiling all of moto's services at install takes longer than the demo;
# Python compiles the few modules the demo imports when it first imports them.
# The last step puts the `ecr-sweeper` command on .venv/bin (an editable install of this clone,
# nothing more: its one dependency, boto3, came with the first).
$(VENV)/.demo-installed: requirements-demo.txt src/handler/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --no-compile -r requirements-demo.txt
	$(VENV)/bin/pip install $(PIP_FLAGS) --no-compile --no-deps -e .
	touch $@

$(VENV)/.installed: $(VENV)/.demo-installed requirements-dev.txt requirements-test.txt
	$(VENV)/bin/pip install $(PIP_FLAGS) -r requirements-dev.txt
	touch $@

$(VENV_313)/.installed: requirements-test.txt requirements-demo.txt src/handler/requirements.txt
	$(PYTHON313) -m venv $(VENV_313)
	$(VENV_313)/bin/pip install $(PIP_FLAGS) -r requirements-test.txt
	touch $@

$(SAM_VENV)/.installed: requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install $(PIP_FLAGS) -r requirements-sam.txt
	touch $@

demo: $(VENV)/.demo-installed ## the ecr-sweeper command on an embedded (moto) registry: plan, sweep, explain
	$(PY) scripts/demo.py

# One command of yours on the demo's registry, seeded afresh each time (nothing persists).
demo-cli: $(VENV)/.demo-installed ## make demo-cli CMD='plan --repository shop/web' (explain, audit, ...)
	$(if $(strip $(CMD)),,$(error CMD is empty: make demo-cli CMD='plan --repository shop/web'))
	$(PY) scripts/demo.py $(CMD)

test: $(VENV)/.installed ## the whole test suite (no network, no AWS account)
	$(PY) -m pytest

test-tomorrow: $(VENV)/.installed ## the suite as of tomorrow: nothing may depend on the date
	SWEEPER_TEST_DAYS_AHEAD=1 $(PY) -m pytest

# The Lambda runs Python 3.13; `make test` runs on $(PYTHON), which may be older.
ifeq ($(PYTHON313),)
test-313: ## the suite on Python 3.13, the Lambda's runtime (skipped when there is none)
	@echo "test-313: skipped: no Python 3.13 (python3.13 on the PATH, or pyenv's 3.13)"
else ifneq ($(PYTHON_IS_313),)
test-313:
	@echo "test-313: skipped: $(PYTHON) is Python 3.13, which make test used"
else
test-313: $(VENV_313)/.installed
	$(VENV_313)/bin/python -m pytest
endif

soak: $(VENV)/.installed ## the property and fault tests with many more examples (minutes)
	HYPOTHESIS_PROFILE=soak $(PY) -m pytest tests/property tests/faults

# Not part of `make check`: an hour or more on two cores. `make mutate MODULES="plan manifests"`
# runs some modules only; docs/testing.md has the scores and what survives.
MODULES ?=
mutate: $(VENV)/.installed ## mutation testing (mutmut) of the modules the promise rests on
	$(PY) scripts/mutate.py $(MODULES)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts

types: $(VENV)/.installed
	$(VENV)/bin/mypy src/handler tests bench

template: $(SAM_VENV)/.installed $(VENV)/.installed
	$(SAM) validate --lint --region $(AWS_DEFAULT_REGION)
	$(VENV)/bin/cfn-lint reader-role.yaml

check: lint types template test test-tomorrow test-313 ## everything CI runs (test includes the small benchmark as a smoke run)

# The SAM CLI of .venv-sam. sam build looks python3.13 up on the PATH: the one found comes first.
build: $(SAM_VENV)/.installed ## sam build (needs Python 3.13)
	PATH="$(dir $(PYTHON313)):$$PATH" $(SAM) build

deploy: build ## sam deploy --config-env ENV (make deploy ENV=staging; ARGS=--guided the first time)
	$(SAM) deploy --config-env $(CONFIG_ENV) $(ARGS)

# StackSets refuse the AWS::Serverless transform: package the code to BUCKET (readable by every
# target account), then translate the packaged template to plain CloudFormation, offline.
stackset-template: build $(VENV)/.installed ## plain CloudFormation of the sweeper for StackSets (BUCKET=my-artifacts)
	$(if $(BUCKET),,$(error stackset-template: set BUCKET, an S3 bucket for the function's code))
	$(SAM) package --s3-bucket $(BUCKET) --output-template-file build/sweeper-packaged.yaml
	$(PY) scripts/stackset_template.py build/sweeper-packaged.yaml build/sweeper-stackset.json

# Benchmarks print their figures and write them as JSON (bench-results-*.json); they assert no
# timing. docs/performance.md says what they measure.
bench: $(VENV)/.installed ## the registry benchmark at the small size (seconds)
	$(PY) -m bench.registry_bench --size small
	$(PY) -m bench.store_bench --size small

bench-large: $(VENV)/.installed ## 100,000+ manifests over 1,000 repositories; make_plan over 1,000,000
	$(PY) -m bench.registry_bench --size large
	$(PY) -m bench.store_bench --size large
	$(PY) -m bench.plan_bench

# Offline: `sam package` and `sam publish` need an AWS account; scripts/release_check.py says what
# it checks instead. Not part of `make check`: it builds into the source tree for a moment.
release-check: $(VENV)/.installed ## build the wheel and sdist and check them and the SAR metadata
	$(PY) scripts/release_check.py

clean:
	rm -rf $(VENV) $(SAM_VENV) $(VENV_313) .pytest_cache .mypy_cache .ruff_cache .aws-sam build/mutate
