"""Every command of the README's LeRobot section that needs no robot runs as written (CLI lines via
subprocess, the Python block via exec), in a folder holding what the commands name: demos.zarr
(expert demos) and a ttfkit checkpoint at runs/flow/checkpoints/step_002000."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ttfkit.data import ReplayBuffer

README = Path(__file__).resolve().parents[2] / "README.md"
ENV = "ttfkit/metaworld-reach-v3"


def _section() -> str:
    text = README.read_text()
    start = text.index("## LeRobot integration")
    return text[start:text.index("\n## ", start + 1)]


def readme_commands() -> list[str]:
    """Indented shell lines starting with ttf / lerobot- (backslash continuations joined), minus
    the ones that drive a robot (--robot.*)."""
    lines = [line[4:] for line in _section().splitlines() if line.startswith("    ")]
    commands, current = [], ""
    for line in lines:
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            if current.startswith(("ttf ", "lerobot-")):
                commands.append(current.strip())
            current = ""
    return [c for c in commands if "--robot." not in c]


def readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", _section(), flags=re.S)
    assert len(blocks) == 1, f"expected one python block in the LeRobot section, found {len(blocks)}"
    return blocks[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, module_helpers):
    root = tmp_path_factory.mktemp("readme")
    policy = module_helpers.make_env_policy(ENV, root / "demos.zarr", n_demos=2)
    policy.save(root / "runs" / "flow" / "checkpoints" / "step_002000")
    return root


def test_readme_lists_the_commands():
    commands = readme_commands()
    assert [c.split()[:3] for c in commands] == [
        ["ttf", "data", "export-lerobot"], ["ttf", "data", "export-lerobot"],
        ["ttf", "data", "import-lerobot"], ["ttf", "export", "lerobot"], ["ttf", "export", "lerobot"],
        ["lerobot-train", "--policy.path=flow_lr", "--dataset.repo_id=local/demos"]]


@pytest.mark.slow  # ~3 min on 2 cores: lerobot-train alone takes ~50 s to start
def test_every_readme_lerobot_command_runs_as_written(workdir, monkeypatch, capsys):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(workdir / "hf"), "WANDB_MODE": "disabled"}
    for command in readme_commands():
        proc = subprocess.run(shlex.split(command, comments=True), cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"

    original, back = ReplayBuffer.open(workdir / "demos.zarr"), ReplayBuffer.open(workdir / "demos_back.zarr")
    for key in original.keys():
        np.testing.assert_array_equal(back[key][:], original[key][:], err_msg=key)
    assert json.loads((workdir / "flow_lr" / "config.json").read_text())["push_to_hub"] is False
    assert json.loads((workdir / "flow_bon_lr" / "config.json").read_text())["align"]["particles"] == 8
    tuned = workdir / "outputs" / "finetune" / "checkpoints" / "last" / "pretrained_model"
    assert (tuned / "model.safetensors").is_file() and (tuned / "policy_preprocessor.json").is_file()

    monkeypatch.chdir(workdir)
    namespace = {}
    exec(compile(readme_python(), "README.md (LeRobot Python block)", "exec"), namespace)
    assert namespace["action"].shape == (4,)
    result = namespace["result"]
    assert result.seeds == [100_000, 100_001] and all(1 <= n <= 50 for n in result.lengths)
    assert f"{result.success_rate} {result.lengths}" in capsys.readouterr().out
