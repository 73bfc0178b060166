# The README's two commands: `make run` and `make test`. Both set up everything first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PORT ?= 8000

.PHONY: run test test-unit test-room-embedded test-browser lint check bench clean

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# The embedded default: SQLite, the in-memory channel layer, email on the console.
run: export DEBUG = 1
run: export DEMO_MODE = 1
run: $(INSTALLED)
	env -u DATABASE_URL -u REDIS_URL -u EMAIL_URL $(BIN)/python manage.py migrate --noinput
	env -u DATABASE_URL -u REDIS_URL -u EMAIL_URL $(BIN)/python manage.py seed_demo
	@echo ""
	@echo "Peer Circles is at http://127.0.0.1:$(PORT)/  (Ctrl-C stops it)"
	@echo ""
	env -u DATABASE_URL -u REDIS_URL -u EMAIL_URL $(BIN)/python -m config.serve -b 127.0.0.1 -p $(PORT) config.asgi:application

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

check: $(INSTALLED)
	DEBUG=1 $(BIN)/python manage.py check
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run

# Browser tests run in their own pytest process: Playwright's sync API leaves an
# event loop behind that Django's ORM and pytest-asyncio trip over.
test-unit: $(INSTALLED)
	$(BIN)/pytest --ignore=tests/browser

# The live room also runs on the embedded default (one process, SQLite, in-memory
# layer); tests that need Redis between processes are deselected there.
test-room-embedded: $(INSTALLED)
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest tests/room -m "not redis"

test-browser: $(INSTALLED)
	$(BIN)/pytest tests/browser

test: lint check test-unit test-room-embedded test-browser

# Issue 5's benchmark: needs PostgreSQL and Redis; writes bench/REPORT.md and stops
# itself within 10 minutes. Smaller runs: BENCH_CIRCLES=3 BENCH_MEMBERS=4 make bench
bench: $(INSTALLED)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache .ruff_cache
