# synthloc: two commands for a fresh machine with only Python and git.
#   make demo   set up .venv and run the demo on the embedded default
#   make test   set up .venv and run ruff, mypy and the test suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.synthloc-installed
FONTS_STAMP := $(VENV)/.synthloc-fonts
TORCH_VERSION := 2.13.0
FONT_PACKAGES := fonts-dejavu-core fonts-dejavu-extra fonts-liberation2 fonts-croscore \
	fonts-open-sans fonts-roboto-unhinted fonts-lato fonts-urw-base35 fonts-texgyre \
	fonts-crosextra-carlito fonts-crosextra-caladea fonts-cantarell fonts-freefont-ttf

.PHONY: setup demo test lint typecheck unit fonts bench clean

setup: $(STAMP) $(FONTS_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and pinned, so that no later package pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

# The engine renders with whatever fonts exist; with root and apt we add Debian's free fonts.
# Without them it falls back to Pillow's embedded font, so failure here is not fatal.
$(FONTS_STAMP): | $(BIN)/python
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian font packages"; \
		( DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(FONT_PACKAGES) >/dev/null 2>&1 \
		  || ( apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(FONT_PACKAGES) >/dev/null 2>&1 ) ) \
		  || echo "font packages could not be installed; continuing with the fonts present"; \
	else \
		echo "not root or no apt-get: using the fonts already installed"; \
	fi
	touch $(FONTS_STAMP)

fonts: $(FONTS_STAMP)

demo: setup
	$(BIN)/synthloc demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: setup lint typecheck unit

# The README's results table. RapidOCR (the speed baseline) is installed without its
# dependencies because it asks for opencv-python, which would clash with the headless build.
bench: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps rapidocr-onnxruntime
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pyclipper six
	$(BIN)/python benchmarks/report.py --readme

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
