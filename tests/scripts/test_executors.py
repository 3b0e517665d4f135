"""Study executors: evaluation shards merge exactly (default suite, no Ray); a tiny study under a local
Ray instance gives the in-process executor's checkpoints.csv, and a failing shard is reported by run
and shard with nothing lost (slow: Ray's start-up)."""

import shutil

import pytest

from ttfkit.envs import EvalResult, evaluate
from ttfkit.policies import load
from ttfkit.scripts.executors import evaluate_shard, merge_shards, shard_ranges
from ttfkit.scripts.gap import GapConfig, run_gap
from ttfkit.scripts.gap_report import read_csv

ENV = "ttfkit/metaworld-reach-v3"


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    from ttfkit.envs.collect import collect

    path = tmp_path_factory.mktemp("demos") / "reach.zarr"
    collect(ENV, 2, path, seed=0)
    return str(path)


def _cfg(out, dataset, episodes=5, optims=("adamw", "dopr-adamw"), steps=4):
    return GapConfig(env=ENV, out=str(out), dataset=dataset, optims=optims, seeds=1, steps=steps,
                     ckpt_every=2, batch=8, eval_episodes=episodes, eval_max_steps=20, n_envs=2, workers=0,
                     device="cpu", backbone_options={"hidden_dim": 32, "n_blocks": 1})


def test_shard_ranges_cover_the_missing_episodes_once():
    assert shard_ranges(0, 25, 10) == [(0, 10), (10, 20), (20, 25)]
    assert shard_ranges(7, 9, 10) == [(7, 9)] and shard_ranges(9, 9, 10) == []
    with pytest.raises(ValueError, match="shard size"):
        shard_ranges(0, 3, 0)


def test_shards_merged_onto_an_existing_result_equal_one_evaluation(tmp_path, demos):
    run_gap(_cfg(tmp_path / "study", demos, episodes=2, optims=("adamw",), steps=2))  # eval.json: episodes 0, 1
    ckpt = tmp_path / "study" / "runs" / "adamw_lr0.001_seed0" / "checkpoints" / "step_000002"
    for first, end in [(2, 4), (4, 5)]:
        evaluate_shard(str(ckpt), ENV, first, end, 20, "cpu", 1)
    merged = merge_shards(ckpt, [(2, 4), (4, 5)])
    whole = evaluate(load(ckpt), ENV, 5, max_steps=20, n_envs=1, workers=0)
    assert (merged.seeds, merged.successes, merged.returns, merged.lengths) == \
        (whole.seeds, whole.successes, whole.returns, whole.lengths)
    assert EvalResult.from_json((ckpt / "eval.json").read_text()) == merged
    with pytest.raises(ValueError, match="does not follow"):
        merge_shards(ckpt, [(2, 4)])  # eval.json already has 5 episodes


@pytest.mark.slow  # ~40 s on idle cores (Ray start, worker imports); 160 s measured on the loaded 2-core machine
def test_ray_study_equals_in_process_and_failures_name_run_and_shard(tmp_path, demos):
    import ray

    from ttfkit.scripts.executors import RayExecutor

    run_gap(_cfg(tmp_path / "local", demos))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        executor = RayExecutor(threads=1, shard_episodes=2, retries=0)
        run_gap(_cfg(tmp_path / "ray", demos), executor=executor)
        local, remote = read_csv(tmp_path / "local" / "checkpoints.csv"), read_csv(tmp_path / "ray" / "checkpoints.csv")
        assert remote == local and len(local) == 4  # 2 runs x 2 checkpoints, every column equal
        assert len(list((tmp_path / "ray").rglob("eval_shards/*.json"))) == 4 * 3  # 5 episodes in shards of 2

        # a broken checkpoint: its shards fail, the error names run and shard, finished files stay
        study = tmp_path / "ray"
        bad = study / "runs" / "dopr-adamw_lr0.001_seed0" / "checkpoints" / "step_000002"
        (bad / "eval.json").unlink()
        shutil.rmtree(bad / "eval_shards")
        (bad / "model.safetensors").write_bytes(b"not a safetensors file")
        kept = {p: p.read_bytes() for p in study.rglob("eval.json")}
        with pytest.raises(RuntimeError, match=r"evaluation shard episodes \d-\d of .*dopr-adamw_lr0.001_seed0.*"
                                               r"step_000002"):
            run_gap(_cfg(study, demos), executor=executor)
        assert {p: p.read_bytes() for p in study.rglob("eval.json")} == kept
    finally:
        ray.shutdown()
