"""mocli's diagnostics inside trainers: TRL's own GRPOTrainer, two steps on a tiny random
model built here (no download), and the function a verl trainer step calls."""

from __future__ import annotations

import math

import numpy as np
import pytest

import mocli
import mocli.trl

torch = pytest.importorskip("torch")


def tiny_trainer(tmp_path, reward_funcs, callbacks=(), steps=2):
    pytest.importorskip("trl")
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    words = ["<pad>", "<eos>", "<unk>", *"abcdefghij", "yes", "no"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, pad_token_id=0, eos_token_id=1, bos_token_id=1, max_position_embeddings=64))
    data = Dataset.from_dict({"prompt": ["a b c", "d e f", "g h", "i j"] * 4})
    args = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=6, max_steps=steps, logging_steps=1, report_to=[], use_cpu=True, bf16=False,
                      save_strategy="no", seed=0)
    return GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=list(reward_funcs), args=args,
                       train_dataset=data, callbacks=list(callbacks))


def test_grpo_trainer_logs_mocli_metrics_next_to_trl_s(tmp_path):
    seen = []

    def correct(prompts, completions, **kwargs):
        out = [float(("yes" in c) or (len(c) % 3 == 0)) for c in completions]
        seen.append((list(prompts), out, None))
        return out

    def brevity(prompts, completions, **kwargs):
        out = [-len(c) / 10 for c in completions]
        seen[-1] = (seen[-1][0], seen[-1][1], out)
        return out

    diag = mocli.trl.Diagnostics([correct, brevity], weights=[1.0, 0.5], estimators=["grpo", "gdpo"])
    trainer = tiny_trainer(tmp_path, diag.reward_funcs, [diag.callback])
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "mocli/grpo/sign_flip.max" in entry]
    assert len(logged) == 2 and all("rewards/correct/mean" in entry for entry in logged)  # next to TRL's own
    assert {"mocli/gdpo/collapse.resolution", "mocli/conflict.mixed_sign_rate"} <= set(logged[0])
    # the logged numbers are mocli analyze's on the same rewards, in TRL's groups of 4
    prompts, a, b = seen[0]
    ro = mocli.Rollouts.from_arrays(np.column_stack([a, b]), np.arange(len(a)) // 4, names=["correct", "brevity"],
                                    weights=[1.0, 0.5])
    doc = mocli.analyze_rollouts(ro, ["grpo", "gdpo"], profile="trl").report.to_dict()
    assert [prompts[i] for i in range(0, len(prompts), 4)] == [prompts[i + 3] for i in range(0, len(prompts), 4)]
    want = doc["estimators"]["grpo"]["sign_flip"]["max"]
    got = logged[0]["mocli/grpo/sign_flip.max"]
    assert (got is None and want is None) or math.isclose(float(got), want, rel_tol=1e-6)
    assert diag.last is not None and diag.failures == []


def test_a_crossed_threshold_warns_or_stops_training(tmp_path):
    def correct(prompts, completions, **kwargs):
        return [float(len(c) % 2) for c in completions]

    diag = mocli.trl.Diagnostics([correct], fail_if=["input.rows > 0"], on_fail="stop")
    trainer = tiny_trainer(tmp_path, diag.reward_funcs, [diag.callback], steps=3)
    with pytest.warns(RuntimeWarning, match="mocli: input.rows"):
        trainer.train()
    assert trainer.state.global_step == 1 and diag.stop_requested and len(diag.failures) == 1


def test_what_cannot_be_wrapped_is_refused():
    pytest.importorskip("trl")

    async def later(prompts, completions, **kwargs):
        return [0.0] * len(completions)

    with pytest.raises(mocli.UsageError, match="synchronous"):
        mocli.trl.Diagnostics([later])
    with pytest.raises(mocli.UsageError, match="2 weights for 1"):
        mocli.trl.Diagnostics([lambda **kw: []], weights=[1, 2])


def test_a_verl_step_gets_the_same_numbers_as_analyze():
    import mocli.torch

    rng = np.random.default_rng(0)
    rewards = torch.tensor(rng.integers(0, 2, size=(64, 2)).astype(np.float32))
    uid = np.repeat([f"u{i}" for i in range(8)], 8)
    values = mocli.torch.diagnostics(rewards, uid, names=["acc", "fmt"], weights=[1.0, 0.2], estimators=["grpo"],
                                     fail_if=["collapse.zero_variance_group_rate > 2"], metrics="all")
    ro = mocli.Rollouts.from_arrays(rewards.numpy().astype(np.float64), uid, names=["acc", "fmt"], weights=[1.0, 0.2])
    doc = mocli.analyze_rollouts(ro, ["grpo"], profile="verl").report.to_dict()
    assert values["mocli/grpo/sign_flip.acc"] == doc["estimators"]["grpo"]["sign_flip"]["acc"]
    assert values["mocli/conflict.mixed_sign_rate"] == doc["conflict"]["mixed_sign_rate"]
    assert values["mocli/checks_failed"] == 0.0
    assert all(isinstance(v, float) for v in values.values())
