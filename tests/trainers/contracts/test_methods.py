"""The method registry and `Method`: a lineage's config is resolved once, where it is created."""

import subprocess
import sys

import pytest

from trainers.contracts.methods import Method, MethodConfigError, available_methods, load_method


def test_every_method_is_available() -> None:
    assert available_methods() == ["ewc", "ilora", "lora", "replay", "titans", "trc"]


def test_resolving_fills_every_default() -> None:
    config = Method.resolve("lora", {"r": 8}).fields
    assert config == {
        "r": 8,
        "alpha": 32.0,
        "dropout": 0.0,
        "target_modules": "all-linear",
        "learning_rate": 2e-3,
        "weight_decay": 0.0,
        "warmup_ratio": 0.03,
        "max_grad_norm": 1.0,
        "max_seq_len": 256,
    }
    assert Method.resolve("lora", config).fields == config  # resolving is idempotent


@pytest.mark.parametrize(
    ("method_type", "config", "param"),
    [
        ("lorax", {}, "method.type"),
        ("lora", {"rank": 8}, "method.lora.rank"),
        ("lora", {"r": 0}, "method.lora.r"),
        ("lora", {"r": "16"}, "method.lora.r"),
        ("lora", {"r": True}, "method.lora.r"),
        ("lora", {"dropout": 1.0}, "method.lora.dropout"),
        ("lora", {"learning_rate": 0}, "method.lora.learning_rate"),
        ("lora", {"target_modules": []}, "method.lora.target_modules"),
        ("lora", {"target_modules": "all"}, "method.lora.target_modules"),
        ("lora", {"max_seq_len": 4}, "method.lora.max_seq_len"),
        ("lora", [], "method.lora"),
        ("replay", {"replay_ratio": -1}, "method.replay.replay_ratio"),
        ("replay", {"priority": "loss"}, "method.replay.priority"),
        ("replay", {"distill_weight": -0.5}, "method.replay.distill_weight"),
        ("ilora", {"distill_weight": 0.5}, "method.ilora.distill_weight"),
        ("titans", {"distill_weight": 0.5}, "method.titans.distill_weight"),
        ("ewc", {"ewc_weight": -1}, "method.ewc.ewc_weight"),
        ("ewc", {"fisher_decay": 1.5}, "method.ewc.fisher_decay"),
        ("ewc", {"fisher_rows": 0}, "method.ewc.fisher_rows"),
        ("ilora", {"slow_lambda": 1.5}, "method.ilora.slow_lambda"),
        ("ilora", {"update_probability": -0.1}, "method.ilora.update_probability"),
        ("ilora", {"consistency_layers": "last"}, "method.ilora.consistency_layers"),
        ("ilora", {"r": 0}, "method.ilora.r"),
    ],
)
def test_rejects_with_the_param_name(method_type: str, config: dict, param: str) -> None:
    with pytest.raises(MethodConfigError) as raised:
        Method.resolve(method_type, config)
    assert raised.value.param == param
    assert raised.value.message


def test_accepts_a_list_of_module_names() -> None:
    config = Method.resolve("lora", {"target_modules": ["q_proj", "v_proj"]}).fields
    assert config["target_modules"] == ["q_proj", "v_proj"]


def test_load_method_gives_the_class_for_the_config() -> None:
    method = load_method("lora")(Method.resolve("lora", {"r": 4}).config)
    assert method.config.r == 4


def test_importing_the_registry_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from trainers.contracts.methods import Method\n"
        "Method.resolve('lora', {})\n"
        "assert not {'torch', 'transformers', 'peft'} & set(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_method_reads_back_what_it_writes() -> None:
    method = Method.resolve("ilora", {"slow_lambda": 0.99})
    assert Method.from_json(method.to_json()) == method
    assert method.to_json()["ilora"]["slow_lambda"] == 0.99


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lora": {}}, 'an object with a "type"'),
        ({"type": "lora", "trc": {}}, r"unexpected key\(s\) \['trc'\]"),
    ],
)
def test_a_malformed_method_object_is_refused(data: dict, message: str) -> None:
    with pytest.raises(MethodConfigError, match=message):
        Method.from_json(data)
