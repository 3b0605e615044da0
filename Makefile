# netviz: `make` runs the experiments (only what changed) and renders the report; `make test` runs the tests.
# Variables: CONFIG=config/offline.toml (an overlay), SET='section.key=VALUE' (one override),
# ARGS='--set a=1 --set b=2 --device cpu' (anything else for `netviz run`), PYTHON=python3.11.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?=
SET ?=
ARGS ?=
RUN_ARGS := $(if $(CONFIG),--config $(CONFIG)) $(if $(SET),--set '$(SET)') $(ARGS)
# Run the package from this checkout's src/ even when .venv is shared with another worktree.
export PYTHONPATH := $(CURDIR)/src
export PYTHONUNBUFFERED := 1
TEX_PACKAGES := latexmk texlive-latex-base texlive-latex-recommended texlive-fonts-recommended lmodern

.PHONY: all tex run report test setup-tex clean distclean

all: tex run report

$(BIN)/netviz: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/netviz
	$(BIN)/python -m netviz run $(RUN_ARGS)

report: $(BIN)/netviz
	$(BIN)/python -m netviz report $$(command -v latexmk >/dev/null || echo --no-pdf)

test: $(BIN)/netviz
	$(BIN)/python -m pytest -q

# LaTeX for the PDF (Debian/Ubuntu, as root; about 30 s).
setup-tex:
	command -v latexmk >/dev/null || { apt-get update -q && apt-get install -y --no-install-recommends $(TEX_PACKAGES); }

# `make` installs LaTeX when it can (root with apt-get); otherwise it says so and renders without the PDF.
tex:
	@command -v latexmk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && $(MAKE) --no-print-directory setup-tex; } \
	  || echo "netviz: latexmk not found and cannot install it here; the report will be HTML and TeX only (see README)"

clean:
	rm -rf results figures/*/ report/report.* report/.build

distclean: clean
	rm -rf $(VENV)
