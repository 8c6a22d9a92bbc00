# eks-gpu-slicing: everyday commands. `make help` lists them.
STACK ?= dev
# Where Pulumi.$(STACK).yaml lives for validate, render and check (default: here), e.g. examples.
STACK_DIR ?=
VENV ?= .venv
# The interpreter that creates $(VENV): .ci/run also tests on the newest supported Python with
# `make test PYTHON=python3.13 VENV=.venv-python3.13`.
PYTHON ?= python3
PY := $(VENV)/bin/python
# The policy pack's own interpreter: PulumiPolicy.yaml names it (runtime.options.virtualenv), and
# the Pulumi CLI runs a local pack with it but never creates it.
POLICY_VENV := policy/venv
# State lives in this folder unless you point PULUMI_BACKEND_URL elsewhere (s3://..., Pulumi Cloud).
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi-state

.PHONY: help setup test lint lint-workflows format validate plan-capacity clis stack preview up destroy \
	time-tests render check verify outputs kubeconfig policy-venv checkov-venv generate

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed ## Create the virtualenv with the program's and the tests' dependencies

$(POLICY_VENV)/.installed: policy/requirements.txt
	test -x $(POLICY_VENV)/bin/python || python3 -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/python -m pip install -q --upgrade pip
	$(POLICY_VENV)/bin/python -m pip install -q -r policy/requirements.txt
	touch $@

policy-venv: $(POLICY_VENV)/.installed ## Create policy/venv, the policy pack's virtualenv (preview and up use it)

# checkov's own virtualenv: its pins (packaging<24, boto3) conflict with pulumi's and kubernetes'.
CHECKOV_VENV ?= .venv-checkov
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q -r requirements-checkov.txt
	touch $@

checkov-venv: $(CHECKOV_VENV)/.installed ## Create .venv-checkov (the tests run checkov from it)

# The tests run with Python's bytecode cache on (__pycache__, ignored by git) even where the
# environment turns it off (PYTHONDONTWRITEBYTECODE, as many containers do): without it, each
# pytest process compiles the project and pytest rewrites every test module again, ~1.7 s of
# CPU per xdist worker.
TEST_ENV := PYTHONDONTWRITEBYTECODE=

test: setup checkov-venv ## Lint, check formatting and run the whole test suite (offline, Pulumi mocks)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(TEST_ENV) $(PY) -m pytest

lint: setup ## Lint only
	$(VENV)/bin/ruff check .

lint-workflows: setup ## Audit .github/workflows (zizmor, fails at medium and above) and check their syntax
	$(VENV)/bin/zizmor --offline --min-severity medium .github/workflows
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

format: setup ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

validate: setup ## Check Pulumi.$(STACK).yaml offline and print each GPU group's capacity
	$(PY) -m eks_gpu_slicing.review.validate $(STACK) $(if $(STACK_DIR),--dir $(STACK_DIR))

plan-capacity: setup ## Strategy and replicas per instance type: MEMORY_GIB=, GPU_MS=, BUSY=, TYPES=, RESULTS=, HAMI=1
	@test -n "$(MEMORY_GIB)" -a -n "$(GPU_MS)" || \
	  { echo "usage: make plan-capacity MEMORY_GIB=<GiB per pod> GPU_MS=<ms per request> [BUSY=1] [TYPES=g4dn.xlarge,...] [RESULTS=file.csv] [HAMI=1]"; exit 2; }
	$(PY) -m eks_gpu_slicing.planning.planner --memory-gib=$(MEMORY_GIB) --gpu-ms=$(GPU_MS) --busy=$(or $(BUSY),1) $(if $(TYPES),--instance-types $(TYPES)) $(if $(RESULTS),--results $(RESULTS)) $(if $(HAMI),--hami)

generate: setup ## Write what the settings models declare: docs/configuration.md's table, the package's input types and schema
	$(PY) -m eks_gpu_slicing.review.generate

time-tests: setup checkov-venv ## Time the test suite as `make test` runs it (median of 3 runs)
	$(TEST_ENV) $(PY) benchmarks/test_suite_time.py

clis: ## Check for the Pulumi CLI and the AWS CLI (the kubeconfig runs `aws eks get-token`)
	@command -v pulumi >/dev/null 2>&1 || { echo "The Pulumi CLI is not installed (or not on PATH)."; \
	  echo "  Install it: curl -fsSL https://get.pulumi.com | sh   (or brew install pulumi/tap/pulumi)"; \
	  echo "  See https://www.pulumi.com/docs/install/"; exit 1; }
	@command -v aws >/dev/null 2>&1 || { echo "The AWS CLI v2 is not installed (or not on PATH);"; \
	  echo "  the cluster's kubeconfig runs 'aws eks get-token'."; \
	  echo "  Install it: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"; exit 1; }

stack: clis setup
	@test -n "$${PULUMI_CONFIG_PASSPHRASE+set}$${PULUMI_CONFIG_PASSPHRASE_FILE+set}" || \
	  { echo "Set PULUMI_CONFIG_PASSPHRASE (or _FILE): it encrypts this stack's secrets"; exit 1; }
	mkdir -p .pulumi-state
	pulumi stack select $(STACK) 2>/dev/null || pulumi stack init $(STACK)

preview: stack policy-venv ## Show what `up` would change, with a diff and the policy pack
	pulumi preview --stack $(STACK) --diff --policy-pack policy

up: stack policy-venv ## Deploy STACK (default dev), with the policy pack
	pulumi up --stack $(STACK) --policy-pack policy

destroy: stack ## Tear STACK down (protected stacks: see docs/operations.md)
	pulumi destroy --stack $(STACK)

outputs: stack ## Print STACK's outputs (the sharing report, Karpenter pools, Job names; secrets hidden)
	pulumi stack output --stack $(STACK)

kubeconfig: stack ## Write STACK's kubeconfig output to kubeconfig-STACK.json (then export KUBECONFIG=...)
	umask 077 && pulumi stack output kubeconfig --show-secrets --stack $(STACK) > kubeconfig-$(STACK).json
	@echo "export KUBECONFIG=$(CURDIR)/kubeconfig-$(STACK).json"

# --- Review without a cloud; verify after deploy ---------------------------------------------

render: setup ## Render STACK offline (mocks) into build/render/STACK: objects, Helm values, graph
	$(PY) -m eks_gpu_slicing.review.render $(STACK) $(if $(STACK_DIR),--dir $(STACK_DIR))

check: setup ## Render STACK, then check schemas, CRDs, plugin config, Helm value paths, policies
	$(PY) -m eks_gpu_slicing.review.check $(STACK) $(if $(STACK_DIR),--dir $(STACK_DIR))

verify: setup ## After `make up`: check GPU sharing works on STACK's cluster (KUBECONFIG_FILE=path skips the Pulumi CLI)
	$(PY) -m eks_gpu_slicing.review.verify $(STACK) $(if $(KUBECONFIG_FILE),--kubeconfig $(KUBECONFIG_FILE)) $(if $(STACK_DIR),--dir $(STACK_DIR))
