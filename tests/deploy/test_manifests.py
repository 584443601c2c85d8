"""The deploy files validate offline: compose against the compose-spec schema (check-jsonschema's
bundled copy), Kubernetes manifests against the API schemas bundled in kubernetes-validate, and the
references between them (volumes, services, secrets, labels) resolve."""

import re
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
# The oldest Kubernetes these manifests target; strict: unknown fields (typos) are errors.
KUBERNETES_VERSION = "1.30.0"
COMPOSE_FILES = [DEPLOY / "compose.yml", DEPLOY / "compose.gpu.yml"]


def check_compose(*paths: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    return subprocess.run([*command, *map(str, paths)], capture_output=True, text=True)


def test_compose_files_follow_the_compose_spec(tmp_path: Path) -> None:
    checked = check_compose(*COMPOSE_FILES)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    broken = tmp_path / "compose.yml"  # the validator does reject a mistake
    broken.write_text((DEPLOY / "compose.yml").read_text().replace("healthcheck:", "healthckeck:", 1))
    assert check_compose(broken).returncode != 0


def test_compose_services_name_what_exists() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    services = compose["services"]
    assert {"api", "worker", "postgres", "vllm", "migrate"} <= set(services)
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in compose["volumes"], (name, volume)
    assert services["vllm"]["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    api = services["api"]["environment"]
    assert api["NEUROPLAST_VLLM_URLS"] == '["http://vllm:8000"]'
    assert _settings_names(api) <= _known_settings()


def k8s_files() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


def resources(path: Path) -> list[dict[str, Any]]:
    return [item for item in yaml.safe_load_all(path.read_text()) if item]


@pytest.mark.parametrize("path", k8s_files(), ids=lambda path: str(path.relative_to(K8S)))
def test_kubernetes_manifests_validate_against_the_api_schemas(path: Path) -> None:
    for resource in resources(path):
        if resource["kind"] in ("Kustomization", "ServiceMonitor"):  # not Kubernetes' own kinds
            continue
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_a_misspelt_field() -> None:
    deployment = resources(K8S / "worker.yaml")[0]
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_manifest_and_references_resolve() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {path.name for path in K8S.glob("*.yaml")} - {
        "kustomization.yaml",
        "secret.example.yaml",
    }
    objects = [resource for name in sorted(listed) for resource in resources(K8S / name)]
    secret = resources(K8S / "secret.example.yaml")[0]
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for resource in [*objects, secret]:
        by_kind.setdefault(resource["kind"], {})[resource["metadata"]["name"]] = resource
    images = {image["name"] for image in kustomization["images"]}

    for workload in [*by_kind["Deployment"].values(), *by_kind["StatefulSet"].values()]:
        pod = workload["spec"]["template"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        volumes = {volume["name"]: volume for volume in pod["spec"].get("volumes", [])}
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in by_kind["PersistentVolumeClaim"]
        for container in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
            assert container["image"] in images or container["image"].startswith("postgres:")
            for mount in container.get("volumeMounts", []):
                claims = {
                    claim["metadata"]["name"] for claim in workload["spec"].get("volumeClaimTemplates", [])
                }
                assert mount["name"] in volumes or mount["name"] in claims, (
                    workload["metadata"]["name"],
                    mount,
                )
            for source in container.get("envFrom", []):
                kind, ref = (
                    ("ConfigMap", source["configMapRef"])
                    if "configMapRef" in source
                    else ("Secret", source["secretRef"])
                )
                assert ref["name"] in by_kind[kind]
    for service in by_kind["Service"].values():
        pods = [
            workload["spec"]["template"]["metadata"]["labels"]
            for workload in [*by_kind["Deployment"].values(), *by_kind["StatefulSet"].values()]
        ]
        assert any(service["spec"]["selector"].items() <= labels.items() for labels in pods), service

    config = by_kind["ConfigMap"]["neuroplast-config"]["data"]
    assert _settings_names(config) | _settings_names(secret["stringData"]) <= _known_settings()
    replicas = by_kind["StatefulSet"]["neuroplast-vllm"]["spec"]["replicas"]
    urls = yaml.safe_load(config["NEUROPLAST_VLLM_URLS"])
    assert urls == [f"http://neuroplast-vllm-{i}.neuroplast-vllm:8000" for i in range(replicas)]


def test_workers_and_vllm_ask_for_gpus_and_vllm_loads_adapters_at_run_time() -> None:
    worker = resources(K8S / "worker.yaml")[0]["spec"]["template"]["spec"]["containers"][0]
    gpus = worker["resources"]["limits"]["nvidia.com/gpu"]
    assert gpus >= 1
    assert {"name": "NEUROPLAST_TRAINER_PROCESSES", "value": str(gpus)} in worker["env"]  # one per GPU
    vllm = next(item for item in resources(K8S / "vllm.yaml") if item["kind"] == "StatefulSet")
    container = vllm["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"} in container["env"]
    assert "--enable-lora" in container["args"]


def test_only_the_api_reaches_vllm_and_both_hold_the_shared_key() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    services = compose["services"]
    vllm, api = services["vllm"], services["api"]
    assert (
        "ports" not in vllm
        and "ports" not in yaml.safe_load(COMPOSE_FILES[1].read_text())["services"]["vllm"]
    )
    assert compose["networks"]["serving"] == {"internal": True}
    assert vllm["networks"] == ["serving"]
    assert [name for name, service in services.items() if "serving" in service.get("networks", [])] == [
        "api",
        "vllm",
    ]
    key = api["environment"]["NEUROPLAST_VLLM_API_KEY"]
    assert key.startswith("${NEUROPLAST_VLLM_API_KEY:?") and vllm["environment"]["VLLM_API_KEY"] == key

    by_kind = {
        (item["kind"], item["metadata"]["name"]): item
        for path in K8S.glob("*.yaml")
        if path.name != "kustomization.yaml"
        for item in resources(path)
    }
    labels = {
        name: by_kind[kind, name]["spec"]["template"]["metadata"]["labels"]
        for kind, name in by_kind
        if kind in ("Deployment", "StatefulSet")
    }
    policy = by_kind["NetworkPolicy", "neuroplast-vllm"]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels["neuroplast-vllm"].items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    (source,) = rule["from"]
    allowed = [
        name for name, pod in labels.items() if source["podSelector"]["matchLabels"].items() <= pod.items()
    ]
    assert allowed == ["neuroplast-api"]
    container = by_kind["StatefulSet", "neuroplast-vllm"]["spec"]["template"]["spec"]["containers"][0]
    assert all("hostPort" not in port for port in container["ports"])
    assert rule["ports"] == [{"protocol": "TCP", "port": container["ports"][0]["name"]}]
    env = {item["name"]: item for item in container["env"]}
    reference = env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]
    secret = resources(K8S / "secret.example.yaml")[0]
    assert reference == {"name": secret["metadata"]["name"], "key": "NEUROPLAST_VLLM_API_KEY"}
    assert "NEUROPLAST_VLLM_API_KEY" in secret["stringData"]  # the API reads the whole Secret


def test_the_service_monitor_scrapes_the_api_service_with_the_metrics_token() -> None:
    monitor = resources(K8S / "with-prometheus-operator" / "servicemonitor.yaml")[0]
    api = next(item for item in resources(K8S / "api.yaml") if item["kind"] == "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= api["metadata"]["labels"].items()
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] in {port["name"] for port in api["spec"]["ports"]}
    assert endpoint["authorization"]["credentials"]["key"] == "NEUROPLAST_METRICS_TOKEN"


def test_the_dockerfile_installs_extras_that_exist() -> None:
    requirements = runpy.run_path(str(DEPLOY / "requirements.py"))[
        "requirements"
    ]  # as the Dockerfile runs it
    dockerfile = (ROOT / "Dockerfile").read_text()
    for arguments in re.findall(r"python requirements\.py ([\w -]+)", dockerfile):
        names = [name for name in arguments.split() if name != "--only"]
        lines = requirements(ROOT / "pyproject.toml", names, only="--only" in arguments)
        assert lines and not any(line.startswith("neuroplast") for line in lines), arguments
    assert "python requirements.py --only cpu" in dockerfile and "--only gpu" in dockerfile


def _settings_names(environment: dict[str, str]) -> set[str]:
    return {name for name in environment if name.startswith("NEUROPLAST_")}


def _known_settings() -> set[str]:
    return {f"NEUROPLAST_{name.upper()}" for name in Settings.model_fields}
