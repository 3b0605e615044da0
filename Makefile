# netviz: `make` runs the experiments (only what changed) and renders the report; `make test` runs the tests.
# Variables: CONFIG=config/vgg16.toml (an overlay), SET='section.key=VALUE' (one override),
# ARGS='--set a=1 --set b=2 --device cpu' (anything else for `netviz run`), PYTHON=python3.11.
# Nothing is decided by file times: `netviz run` and `netviz report` skip what is unchanged by content hashes,
# so `make` with nothing changed takes seconds. `make grade` compares this build with EXPECTED (exit 1 on failure);
# `make expected` regenerates the shipped expected set (default configuration, on CPU, tolerances measured).
# `make bench` times each section's own jobs (GFLOP/s as a share of the measured fp32 matmul rate; the per-image loop and
# the libraries as comparisons) and the scale-out on Ray, for the report's speed appendix.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?=
SET ?=
ARGS ?=
EXPECTED ?= expected/default
GRADE_ARGS ?=
RUN_ARGS := $(if $(CONFIG),--config $(CONFIG)) $(if $(SET),--set '$(SET)') $(ARGS)
# Run the package from this checkout's src/ even when .venv is shared with another worktree.
export PYTHONPATH := $(CURDIR)/src
export PYTHONUNBUFFERED := 1
TEX_PACKAGES := latexmk texlive-latex-base texlive-latex-recommended texlive-fonts-recommended lmodern

.PHONY: all build tex run report test grade expected bench setup-tex clean distclean

# `make`: the whole build, then where the report is and how long it took.
all:
	@start=$$(date +%s); $(MAKE) --no-print-directory build && \
	  echo "netviz: report in $(CURDIR)/report/ ($$(cd report && ls report.pdf report.html 2>/dev/null | tr '\n' ' ' | sed 's/ $$//')); built in $$(( $$(date +%s) - start )) s"

build: tex run report

# The install is redone when pyproject.toml's content changes (a stamp named by its hash, not file times).
INSTALLED := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)

$(INSTALLED):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,ray]'
	rm -f $(VENV)/.installed-*
	touch $@

run: $(INSTALLED)
	$(BIN)/python -m netviz run $(RUN_ARGS)

report: $(INSTALLED)
	$(BIN)/python -m netviz report $$(command -v latexmk >/dev/null || echo --no-pdf)

test: $(INSTALLED)
	$(BIN)/python -m pytest -q

# Compare the build here (results/, figures/) with an expected set; writes report/grade.html.
grade: $(INSTALLED)
	$(BIN)/python -m netviz grade --expected $(EXPECTED) $(GRADE_ARGS)

# Regenerate expected/default/ from the default configuration on CPU (cached sections are reused), with tolerances
# measured by building it again under legitimate implementation variants (netviz/variation.py; in .netviz-variants/,
# two at a time, one thread each). VARIANTS=none skips them (then only the [grade] floors apply).
VARIANTS ?= all
expected: $(INSTALLED)
	$(BIN)/python -m netviz run --device cpu
	$(BIN)/python -m netviz expected --out expected/default --variants $(VARIANTS)

# Time each section's jobs (as `netviz run` runs them) against the per-image loop and Captum/torchattacks, and the
# scale-out part (per-job overhead on a local Ray instance; throughput local vs Ray with 1 and 2 workers on 100 images);
# writes results/bench/ and figures/bench/, which the next `make report` shows as an appendix. Not part of `make`.
bench: $(INSTALLED)
	$(BIN)/python -m netviz bench $(RUN_ARGS)

# LaTeX for the PDF (Debian/Ubuntu, as root; about 30 s).
setup-tex:
	command -v latexmk >/dev/null || { apt-get update -q && apt-get install -y --no-install-recommends $(TEX_PACKAGES); }

# `make` installs LaTeX when it can (root with apt-get); otherwise it says so and renders without the PDF.
tex:
	@command -v latexmk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && $(MAKE) --no-print-directory setup-tex; } \
	  || echo "netviz: latexmk not found and cannot install it here; the report will be HTML and TeX only (see README)"

clean:
	rm -rf results figures/*/ report/report.* report/.build report/.report-key.json report/grade.html .netviz-variants

distclean: clean
	rm -rf $(VENV)
