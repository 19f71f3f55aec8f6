"""The Hub stand-in answers huggingface-hub's real client calls (what convert/ and pull rely on)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.hub_standin import STANDIN_TOKEN, HubStandin, StandinFile

CLIENT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    api = HfApi()
    info = api.model_info("org/Checkpoint", files_metadata=True)
    tree = sorted(f.path for f in api.list_repo_tree("org/Checkpoint", recursive=True))
    top = sorted(f.path for f in api.list_repo_tree("org/Checkpoint"))
    paths = {
        f.path: f.lfs.sha256 if f.lfs else None
        for f in api.get_paths_info("org/Checkpoint", ["model.safetensors", "config.json"])
    }
    folder = Path(snapshot_download("org/Checkpoint"))
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file()
    }
    one = hf_hub_download("org/Checkpoint", "config.json", revision=info.sha)
    print(json.dumps({
        "sha": info.sha,
        "siblings": [(s.rfilename, s.size, s.lfs.sha256 if s.lfs else None) for s in info.siblings],
        "tree": tree, "top": top, "paths": paths, "files": files, "one": Path(one).read_text(),
    }))
""")


def test_huggingface_hub_client_calls_work_against_the_standin(tmp_path):
    weights = bytes(range(256)) * 4
    with HubStandin() as hub:
        repo = hub.add_repo(
            "org/Checkpoint",
            {
                "config.json": StandinFile(b'{"model_type": "llama"}', lfs=False),
                "model.safetensors": weights,
                "tokenizer/tokenizer.json": StandinFile(b"{}", lfs=False),
            },
        )
        done = subprocess.run(
            [sys.executable, "-c", CLIENT],
            env={**os.environ, **hub.env(tmp_path / "hf")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        sha256 = StandinFile(weights).sha256
        assert out["sha"] == repo.commit
        assert ["model.safetensors", len(weights), sha256] in out["siblings"]
        assert out["tree"] == ["config.json", "model.safetensors", "tokenizer", "tokenizer/tokenizer.json"]
        assert out["top"] == ["config.json", "model.safetensors", "tokenizer"]
        assert out["paths"] == {"model.safetensors": sha256, "config.json": None}
        assert out["files"]["model.safetensors"].encode("latin-1") == weights
        assert out["files"]["tokenizer/tokenizer.json"] == "{}"
        assert out["one"] == '{"model_type": "llama"}'


def test_gated_files_need_the_standin_token(tmp_path):
    fetch = "from huggingface_hub import hf_hub_download as d; print(open(d('corp/Gated', 'a.gguf'), 'rb').read())"
    with HubStandin() as hub:
        hub.add_repo("corp/Gated", {"a.gguf": b"GGUF"}, gated=True)
        refused = subprocess.run(
            [sys.executable, "-c", fetch],
            env={**os.environ, **hub.env(tmp_path / "a")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode != 0 and "GatedRepoError" in refused.stderr
        allowed = subprocess.run(
            [sys.executable, "-c", fetch],
            env={**os.environ, **hub.env(tmp_path / "b", token=STANDIN_TOKEN)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert allowed.returncode == 0 and "b'GGUF'" in allowed.stdout, allowed.stderr
