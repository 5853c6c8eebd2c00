# Two commands do everything on a fresh machine: `make train` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# The dataset: ../shared/data on this project's machines, else the per-user cache (downloaded when online).
ifneq ($(wildcard ../shared/data/MNIST/raw),)
export MNIST_NBDEV_DATA ?= $(abspath ../shared/data)
endif

.PHONY: install hooks train test nbtest slow pytest sync notebooks readme bench docs preview browser pretrained clean

install:  ## the package in editable mode, with the tools to develop and test it
	$(PIP) install -q -e ".[dev]"

hooks: install  ## nbdev's git hooks and notebook merge driver (.gitconfig, .gitattributes), as nbdev_install_hooks sets them up
	nbdev_install_hooks

train: install  ## train the default recipe on MNIST and report its test accuracy
	mnist-train --out mnist_model

test: install browser slow docs pytest  ## every test: the notebooks with their slow cells, then tests/ (which checks the built site in a browser)

nbtest:  ## the notebooks as tests, quickly: the cells flagged slow (full training runs) skipped
	nbdev_test --n_workers 2 --timing

slow:  ## the notebooks as tests with the cells flagged slow too (the full tutorial and accurate runs)
	nbdev_test --n_workers 2 --timing --flags slow

pytest:
	$(PYTHON) -m pytest -q tests

sync:  ## export the notebooks to the library, clean them, write README.md
	nbdev_export
	nbdev_clean
	$(PYTHON) tools/make_readme.py

notebooks: install  ## re-run every notebook in place, so the docs show a real run (about 15 min), then sync
	cd nbs && $(PYTHON) ../tools/run_notebooks.py index.ipynb [0-9]*.ipynb
	$(MAKE) sync

bench: install  ## speed and accuracy against the tutorial's loop and the fastest public peer (results.md), the ensemble recipe (ensemble_results.md, about 15 min), mnist-predict's wall time (predict_results.md), the server under load (serve_results.md) under hostile load (serve_hostile_results.md), "not a digit" and calibration (refusal_results.md), and whole numbers (number_reading_results.md); then the README's table of the recipes
	$(PYTHON) benchmarks/bench.py; s1=$$?; $(PYTHON) benchmarks/ensemble.py; s5=$$?; \
	  $(PYTHON) benchmarks/predict_bench.py; s2=$$?; \
	  $(PYTHON) benchmarks/serve_load.py; s3=$$?; $(PYTHON) benchmarks/refusal.py; s4=$$?; \
	  $(PYTHON) benchmarks/number_reading.py; \
	  $(PYTHON) tools/bench_table.py && $(PYTHON) tools/make_readme.py; \
	  $(PYTHON) benchmarks/serve_hostile.py && [ $$s1 = 0 ] && [ $$s2 = 0 ] && [ $$s3 = 0 ] && [ $$s4 = 0 ] && [ $$s5 = 0 ]

pretrained: install  ## rebuild the model that ships inside the package, with its model card
	mnist-train --recipe accurate --seed 0 --threads 2 --negatives 10000 --writers 20000 \
	  --coarse 0.15 --valid 5000 --out mnist_nbdev/pretrained
	rm -f mnist_nbdev/pretrained/checkpoint.* mnist_nbdev/pretrained/.mnist-train.lock
	mnist-evaluate --model mnist_nbdev/pretrained --outside --card  # per-class and other writers' figures

docs: install  ## the docs site in _docs/: nbdev's processing, then Quarto if on PATH, else smalldocs
	$(PYTHON) tools/docs.py

preview:  ## serve the built site (make docs first) on http://127.0.0.1:8000, this machine only
	$(PYTHON) -m http.server 8000 --bind 127.0.0.1 --directory _docs

browser:  ## Debian's chromium and chromium-driver, for the docs test in a real browser
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] || { echo "chromium and chromium-driver are missing: install them as root (apt-get install chromium chromium-driver)"; exit 1; }; \
	    apt-get install -y -q chromium chromium-driver >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }; }

clean:
	rm -rf build dist *.egg-info _docs _proc nbs/_docs nbs/_proc

readme:  ## README.md from nbs/index.ipynb (nbdev_readme needs Quarto)
	$(PYTHON) tools/make_readme.py
