# Two commands do everything on a fresh machine:
#   make demo   builds the offline demo atlas into site/ (random-init baselines, no download)
#   make test   runs the whole test suite (unit, planted-effect, site and real-browser tests)
# Both create .venv and install what they need first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install browser slurm serve bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/python -c "import timm, torch, torchvision; print('torch', torch.__version__, '| timm', timm.__version__)"
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the real-browser tests (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# A one-node Slurm cluster for the executor tests (Debian slurm-wlm + munge; needs root). Where it
# cannot start, those tests skip with the reason.
slurm:
	@if [ "$$(id -u)" = 0 ]; then scripts/slurm_local.sh up >/dev/null || echo "local Slurm did not start: its tests skip"; \
	  else echo "not root: no local Slurm, its tests skip"; fi

demo: $(STAMP)
	$(BIN)/python scripts/build_atlas.py --config configs/demo.toml

serve: $(STAMP)
	$(BIN)/python scripts/build_atlas.py --config configs/demo.toml --serve

test: $(STAMP) browser slurm
	$(BIN)/python -m pytest -q -ra

bench: $(STAMP)
	$(BIN)/python bench/bench_extraction.py
	$(BIN)/python bench/bench_kmeans.py

clean:
	rm -rf site build .cache/features site_src/models site_src/compare site_src/generated
