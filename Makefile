# Two commands do everything on a fresh machine: `make train` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# The dataset: ../shared/data on this project's machines, else the per-user cache (downloaded when online).
ifneq ($(wildcard ../shared/data/MNIST/raw),)
export MNIST_NBDEV_DATA ?= $(abspath ../shared/data)
endif

.PHONY: install train test nbtest pytest sync readme bench docs pretrained clean

install:  ## the package in editable mode, with the tools to develop and test it
	$(PIP) install -q -e ".[dev]"

train: install  ## train the default recipe on MNIST and report its test accuracy
	mnist-train --out mnist_model

test: install nbtest pytest  ## every test: the notebooks, then tests/

nbtest:
	nbdev_test --n_workers 2 --timing

pytest:
	$(PYTHON) -m pytest -q tests

sync:  ## export the notebooks to the library, clean them, write README.md
	nbdev_export
	nbdev_clean
	$(PYTHON) tools/make_readme.py

bench: install  ## speed and accuracy against the tutorial's loop; writes benchmarks/results.md
	$(PYTHON) benchmarks/bench.py

pretrained: install  ## rebuild the model that ships inside the package
	mnist-train --recipe fast --seed 0 --threads 2 --out mnist_nbdev/pretrained
	rm -f mnist_nbdev/pretrained/checkpoint.*

clean:
	rm -rf build dist *.egg-info _docs _proc nbs/_docs nbs/_proc

readme:  ## README.md from nbs/index.ipynb (nbdev_readme needs Quarto)
	$(PYTHON) tools/make_readme.py
