# Two commands do all set-up on a fresh machine:  make demo  and  make test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Blender's bpy pins numpy<2 and has no torch: the add-on tests run it in venvs of its own.
BLENDER_VERSIONS := 4.2 4.5 5.0
BPY_4.2 := 4.2.23
BPY_4.5 := 4.5.15
BPY_5.0 := 5.0.1
BLENDER_STAMPS := $(foreach v,$(BLENDER_VERSIONS),.venv-blender-$(v)/.installed)
# numba (librosa, our CPU sine) compiles on first use; keep its cache between runs.
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba
export MPLBACKEND := Agg

.PHONY: demo test bench env blender-env addon clean

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

.venv-blender-%/.installed:
	$(PYTHON) -m venv .venv-blender-$*
	.venv-blender-$*/bin/pip install --quiet bpy==$(BPY_$*)
	touch $@

blender-env: $(BLENDER_STAMPS)

demo: $(STAMP)
	$(BIN)/audio-cppn demo

test: $(STAMP) $(BLENDER_STAMPS)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

addon:
	$(PYTHON) build_addon.py

clean:
	rm -rf $(VENV) $(foreach v,$(BLENDER_VERSIONS),.venv-blender-$(v)) .cache out dist
