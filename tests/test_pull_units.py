"""Pull's pure parts: quantizations and split parts from Hub file names, choosing a variant, safe names,
disk space, tokens."""

from __future__ import annotations

import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_naming import (
    FALLBACK_QUANT,
    RepoFile,
    best_fitting_variant,
    gguf_variants,
    model_stem,
    quantization_in_name,
    variant_for_request,
)
from llamadesk.app.hub.repo import is_safe_repo_path, parse_pull_spec

MB = 1024**2


@pytest.mark.parametrize(
    "name, quant",
    [
        ("SmolLM2-135M-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("smollm2-135m-instruct-q4_k_m.gguf", "Q4_K_M"),
        ("Llama-3.2-1B-Instruct.Q8_0.gguf", "Q8_0"),
        ("Qwen3-8B-UD-Q4_K_XL.gguf", "Q4_K_XL"),
        ("Q4_K_S/Model-Q4_K_S-00001-of-00002.gguf", "Q4_K_S"),
        ("model-IQ4_XS.gguf", "IQ4_XS"),
        ("model-bf16.gguf", "BF16"),
        ("Q4_K_M-model.gguf", "Q4_K_M"),
        ("model.gguf", None),
        ("model-Q4_K_MX.gguf", None),  # not a quantization llama.cpp knows
        ("SmolLM2-135M-Instruct-Q6_K_L.gguf", "Q6_K_L"),  # bartowski's: was read as Q6_K
        ("SmolLM2-135M-Instruct-Q4_K_L.gguf", "Q4_K_L"),  # was no quantization at all
        ("SmolLM2-135M-Instruct-Q5_K_L.gguf", "Q5_K_L"),
    ],
)
def test_quantization_in_name(name, quant):
    assert quantization_in_name(name) == quant


def files(*specs: tuple[str, int]) -> list[RepoFile]:
    return [RepoFile(path=p, size=s) for p, s in specs]


def test_split_parts_group_into_one_variant_and_incomplete_splits_are_left_out():
    variants = gguf_variants(
        files(
            ("M-Q8_0-00002-of-00002.gguf", 5 * MB),
            ("M-Q8_0-00001-of-00002.gguf", 5 * MB),
            ("M-Q4_K_M.gguf", 4 * MB),
            ("M-Q6_K-00001-of-00003.gguf", 1),
            ("mmproj-M-F16.gguf", 1),
            ("README.md", 1),
        )
    )
    assert [(v.quantization, [f.path for f in v.files]) for v in variants] == [
        ("Q4_K_M", ["M-Q4_K_M.gguf"]),
        ("Q8_0", ["M-Q8_0-00001-of-00002.gguf", "M-Q8_0-00002-of-00002.gguf"]),
    ]
    assert variants[1].size == 10 * MB
    assert model_stem("sub/M-Q8_0-00001-of-00002.gguf") == "M-Q8_0"


def test_best_fitting_variant_prefers_quality_within_the_budget():
    variants = gguf_variants(
        files(
            ("m-Q2_K.gguf", 2 * MB),
            ("m-Q4_K_M.gguf", 4 * MB),
            ("m-Q6_K.gguf", 6 * MB),
            ("m-Q8_0.gguf", 8 * MB),
            ("m-F16.gguf", 16 * MB),
        )
    )
    pick = lambda budget: best_fitting_variant(variants, budget)  # noqa: E731
    assert pick(100 * MB).quantization == "Q8_0"  # F16 is never the automatic choice while a quant fits
    assert pick(7 * MB).quantization == "Q6_K"
    assert pick(5 * MB).quantization == "Q4_K_M"
    assert pick(2 * MB).quantization == "Q2_K"
    assert pick(1 * MB) is None
    assert pick(None).quantization == FALLBACK_QUANT  # unsure of the machine
    unknown_sizes = gguf_variants([RepoFile("m-Q8_0.gguf"), RepoFile("m-Q4_K_M.gguf")])
    assert best_fitting_variant(unknown_sizes, 100 * MB).quantization == FALLBACK_QUANT


def test_variant_for_request_by_quant_or_file():
    variants = gguf_variants(
        files(("a/m-Q4_K_M.gguf", 1), ("m-Q8_0-00001-of-00002.gguf", 1), ("m-Q8_0-00002-of-00002.gguf", 1))
    )
    assert variant_for_request(variants, "q8_0").quantization == "Q8_0"
    assert variant_for_request(variants, "m-Q4_K_M.gguf").quantization == "Q4_K_M"
    assert variant_for_request(variants, "m-Q8_0-00002-of-00002.gguf").first.path == "m-Q8_0-00001-of-00002.gguf"
    assert variant_for_request(variants, "Q5_K_M") is None


@pytest.mark.parametrize(
    "path, safe",
    [
        ("model-Q4_K_M.gguf", True),
        ("Q4_K_M/model.gguf", True),
        ("../../x.gguf", False),
        ("a/../../x.gguf", False),
        ("/etc/passwd", False),
        ("C:/x.gguf", False),
        ("a\\..\\x.gguf", False),
        ("./x.gguf", False),
        ("", False),
        ("a//b.gguf", False),
        ("model\nQ4_K_M.gguf", False),
        ("x\x00.gguf", False),
        ("a" * 256 + ".gguf", False),
        ("a" * 200 + "/" + "b" * 200 + ".gguf", True),
    ],
)
def test_is_safe_repo_path(path, safe):
    assert is_safe_repo_path(path) is safe


def test_parse_pull_spec():
    assert parse_pull_spec("owner/Name-GGUF:Q4_K_M") == parse_pull_spec(" owner/Name-GGUF:Q4_K_M ")
    assert parse_pull_spec("owner/Name-GGUF").choice is None
    assert parse_pull_spec("owner/Name-GGUF:file.gguf").choice == "file.gguf"
    for bad in ("owner/na me", "a/b/c", "owner/x--y", "owner/Name:", ""):
        with pytest.raises(BadInputError):
            parse_pull_spec(bad)


def test_too_little_disk_space_is_refused_before_downloading(tmp_path):
    from llamadesk.app.core.errors import LlamadeskError
    from llamadesk.app.hub.download import _check_free_space

    _check_free_space(tmp_path, 1024, "small.gguf")
    with pytest.raises(LlamadeskError, match="not enough disk space for huge.gguf"):
        _check_free_space(tmp_path, 10**18, "huge.gguf")


# In a child: HF_HOME is read when huggingface-hub is imported, and the file-size limit is per process.
REF_ON_A_FULL_DISK = """
import resource, sys
from llamadesk.app.hub.cache import cached_commit, remember_ref
remember_ref("tiny/Tiny-GGUF", "main", "a" * 40)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))  # a disk with no room left
try:
    remember_ref("tiny/Tiny-GGUF", "main", "b" * 40)
except Exception as err:
    print(type(err).__name__)
print(cached_commit("tiny/Tiny-GGUF", "main"))
remember_ref("tiny/Tiny-GGUF", "main", "a" * 40)  # what the ref says already: nothing to write
print("unchanged")
"""


def run_in_child(script: str, hf_home):
    """`script` in a fresh interpreter (its file-size limit stays there), with HF_HOME at `hf_home`."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HOME": str(hf_home)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)


def test_a_ref_that_cannot_be_written_keeps_the_commit_it_named(tmp_path):
    # The ref was written in place: a pull that filled the disk left refs/main empty, and offline
    # pulls of that repo then found nothing in the cache.
    done = run_in_child(REF_ON_A_FULL_DISK, tmp_path / "hf")
    assert done.stderr == "" and done.stdout.split() == ["LlamadeskError", "a" * 40, "unchanged"]
    refs = tmp_path / "hf" / "hub" / "models--tiny--Tiny-GGUF" / "refs"
    assert [p.name for p in refs.iterdir()] == ["main"]  # no temporary left beside it


# In a child, as above; os.symlink refuses as it does on Windows without developer mode.
COPY_ON_A_FULL_DISK = """
import errno, os, resource, sys
from pathlib import Path
from llamadesk.app.hub.cache import link_snapshot, repo_storage

def refused(*_args, **_kwargs):
    raise OSError(errno.EPERM, "symbolic links are not allowed here")

os.symlink = refused
blob = repo_storage("tiny/Tiny-GGUF") / "blobs" / ("c" * 64)
blob.parent.mkdir(parents=True)
blob.write_bytes(b"GGUF" * 4096)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))  # room for a quarter of it
try:
    link_snapshot("tiny/Tiny-GGUF", "d" * 40, "Tiny-Q4_K_M.gguf", blob)
except OSError as err:
    print(err.errno == errno.EFBIG)
"""


def test_a_snapshot_copy_cut_short_leaves_nothing_behind(tmp_path):
    # Where no symlink can be made the blob is copied into the snapshot: a copy cut short by a full
    # disk stayed under its hidden name, as large as the disk had room for, never removed.
    done = run_in_child(COPY_ON_A_FULL_DISK, tmp_path / "hf")
    assert done.stderr == "" and done.stdout.split() == ["True"]
    snapshot = tmp_path / "hf" / "hub" / "models--tiny--Tiny-GGUF" / "snapshots" / ("d" * 40)
    assert list(snapshot.iterdir()) == []


def test_the_token_never_goes_to_a_cdn(monkeypatch):
    from llamadesk.app.hub.download import _headers_for

    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    hub = "https://huggingface.co/o/m/resolve/abc/m.gguf"
    assert _headers_for(hub, hub)["authorization"] == "Bearer hf_secret"
    assert "authorization" not in _headers_for(hub, "https://cas-bridge.xethub.hf.co/signed?x=1")


def test_choose_variant_for_this_machine():
    from llamadesk.app.core.machine import MachineFacts
    from llamadesk.app.hub.pull import choose_variant
    from llamadesk.app.hub.repo import RepoListing

    listing = RepoListing(
        "o/m",
        "c" * 40,
        tuple(files(("m-Q4_K_M.gguf", 800 * MB), ("m-Q8_0.gguf", 1500 * MB))),
        ("../x-Q2_K.gguf",),
        gated=False,
    )
    roomy = MachineFacts(4, 8, total_ram=16 * 1024 * MB, available_ram=12 * 1024 * MB)
    small = MachineFacts(1, 1, total_ram=2 * 1024 * MB, available_ram=1600 * MB)
    tiny = MachineFacts(1, 1, total_ram=1024 * MB, available_ram=600 * MB)
    assert choose_variant(listing, None, roomy).quantization == "Q8_0"
    assert choose_variant(listing, None, small).quantization == "Q4_K_M"  # Q8_0 would leave no room for the KV cache
    assert choose_variant(listing, None, None).quantization == "Q4_K_M"  # machine unknown
    with pytest.raises(BadInputError, match="none of o/m's GGUF files fits"):
        choose_variant(listing, None, tiny)
    assert choose_variant(listing, "Q8_0", tiny).quantization == "Q8_0"  # asked for explicitly: allowed
    with pytest.raises(BadInputError, match="neither a quantization nor a file name"):
        choose_variant(listing, "../x-Q2_K.gguf", roomy)


@pytest.mark.parametrize(
    "name",
    [
        "evil\u009b2J-Q4_K_M.gguf",  # C1 CSI: a terminal that honours it reads an escape
        "a\u202e-Q4_K_M.gguf",  # right-to-left override: the name reads as another
        "zero\u200bwidth-Q4_K_M.gguf",
        "/".join(["a"] * 600) + "/M-Q4_K_M.gguf",  # every part short, the whole past what a cache path holds
    ],
)
def test_names_that_print_as_something_else_or_cannot_be_made_are_unsafe(name):
    assert not is_safe_repo_path(name)


def test_a_255_byte_name_is_safe():
    assert is_safe_repo_path("L" * 243 + "-Q4_K_M.gguf")


def test_server_names_in_messages_show_invisible_characters():
    from llamadesk.app.hub.repo import shown_name

    assert shown_name("a\u202eb\u009bc") == '"a\\u202eb\\u009bc"'


@pytest.mark.parametrize(
    "endpoint, problem",
    [
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("localhost:8080", "http:// or https://"),
        ("https://", "names no host"),
        ("https://hf-mirror.example", None),
    ],
)
def test_hf_endpoint_values_huggingface_hub_cannot_use(endpoint, problem):
    from llamadesk.app.hub import endpoint_problem

    found = endpoint_problem(endpoint)
    assert found is None if problem is None else problem in found
