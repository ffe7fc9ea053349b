"""deploy/kubernetes/: every manifest is valid Kubernetes (its published schemas, strictly: unknown
fields are errors), and none drifts from the app it runs: probe paths, port, FER_* names, the drain
time, the container's user, and the commands' flags are read from the code itself. No cluster is
needed; what needs one (autoscaling in action, GPU scheduling, rendezvous across nodes) is listed in
the README as not run here."""

import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from api.serve import GRACEFUL_SHUTDOWN_S
from api.settings import Settings
from fer_cli.main import build_parser
from scripts.render_manifests import render
from tests.conftest import REPO
from training.config import parse_config

KUBERNETES = REPO / "deploy" / "kubernetes"
VARIANTS = ["api", "gpu", "training"]
KUBERNETES_VERSION = "1.34.0"  # the oldest release the manifests need (podFailurePolicy, sidecar-free)


def documents(variant: str) -> list[dict]:
    return render(KUBERNETES / variant)


def one(variant: str, kind: str) -> dict:
    (found,) = [d for d in documents(variant) if d["kind"] == kind]
    return found


def container(variant: str, kind: str) -> dict:
    spec = one(variant, kind)["spec"]["template"]["spec"]
    (found,) = spec["containers"]
    return found


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(variant):
    for document in documents(variant):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_manifest_with_a_misspelt_field_is_refused():
    deployment = one("api", "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_renderer_gives_what_kubectl_kustomize_gives(variant):
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES / variant)], capture_output=True, text=True, check=True
    ).stdout
    by_identity = lambda docs: {(d["kind"], d["metadata"]["name"]): d for d in docs}  # noqa: E731
    assert by_identity(yaml.safe_load_all(rendered)) == by_identity(documents(variant))


def test_the_api_containers_port_probes_and_command_are_the_apps():
    routes = _api_paths()
    for variant in ("api", "gpu"):
        api = container(variant, "Deployment")
        command = api["command"]
        assert command[:2] == ["fer", "serve"]
        arguments = build_parser().parse_args(command[1:])  # the CLI takes every flag given
        (port,) = api["ports"]
        assert port["containerPort"] == arguments.port
        assert api["readinessProbe"]["httpGet"]["path"] == "/readyz" and "/readyz" in routes
        assert api["livenessProbe"]["httpGet"]["path"] == "/healthz" and "/healthz" in routes
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert api[probe]["httpGet"]["port"] in (port["name"], port["containerPort"])
    service = one("api", "Service")
    assert service["spec"]["ports"][0]["targetPort"] == container("api", "Deployment")["ports"][0]["name"]


def _api_paths() -> set[str]:
    from api.routes import page, predict, probes

    return {route.path for router in (predict.router, probes.router, page.router) for route in router.routes}


def test_environment_variables_are_settings_the_app_reads():
    known = {f"FER_{name.upper()}" for name in Settings.model_fields}
    for variant in ("api", "gpu"):
        for variable in container(variant, "Deployment")["env"]:
            assert variable["name"] in known, variable["name"]
    env = {v["name"]: v for v in container("api", "Deployment")["env"]}
    assert env["FER_API_KEY"]["valueFrom"]["secretKeyRef"]  # the key comes from a Secret, never a literal
    devices = {
        variant: {v["name"]: v.get("value") for v in container(variant, "Deployment")["env"]}
        for variant in ("api", "gpu")
    }
    assert devices["api"]["FER_DEVICE"] == "cpu" and devices["gpu"]["FER_DEVICE"] == "cuda"


def test_termination_leaves_time_for_the_drain():
    spec = one("api", "Deployment")["spec"]["template"]["spec"]
    pre_stop = container("api", "Deployment")["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + GRACEFUL_SHUTDOWN_S + 10


def test_pods_run_as_the_images_user():
    (user,) = re.findall(r"^USER (\d+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    for variant, kind in (("api", "Deployment"), ("gpu", "Deployment"), ("training", "Job")):
        security = one(variant, kind)["spec"]["template"]["spec"]["securityContext"]
        assert security["runAsUser"] == int(user) and security["runAsNonRoot"]


def test_gpu_variants_ask_for_gpus_and_tolerate_their_taint():
    for variant, kind in (("gpu", "Deployment"), ("training", "Job")):
        spec = one(variant, kind)["spec"]["template"]["spec"]
        (limits,) = [c["resources"]["limits"] for c in spec["containers"]]
        assert limits["nvidia.com/gpu"] >= 1
        assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    assert "nvidia.com/gpu" not in container("api", "Deployment")["resources"]["limits"]


def test_the_training_job_runs_the_launcher_with_flags_the_trainer_takes(tmp_path):
    job = one("training", "Job")
    command = container("training", "Job")["command"]
    assert command[:3] == ["python", "-m", "training.launch"]
    launcher_flags, trainer_flags = command[3 : command.index("-m", 3)], command[command.index("-m", 3) + 2 :]
    from torch.distributed.run import parse_args

    launcher = parse_args([*launcher_flags, "-m", "training.train"])
    assert launcher.nnodes == str(job["spec"]["parallelism"]) == str(job["spec"]["completions"])
    assert job["spec"]["completionMode"] == "Indexed"
    service = one("training", "Service")
    host, port = launcher.rdzv_endpoint.split(":")
    assert host == f"{job['metadata']['name']}-0.{service['metadata']['name']}"
    assert job["spec"]["template"]["spec"]["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None" and int(port) == service["spec"]["ports"][0]["port"]
    config = parse_config(trainer_flags)  # every flag is the trainer's
    assert config.resume  # a rescheduled pod goes on from last.pt
    mounts = {m["mountPath"] for m in container("training", "Job")["volumeMounts"]}
    assert Path(config.data).parts[1] == "shared" and "/shared" in mounts
    (rule,) = [r for r in job["spec"]["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert rule["onExitCodes"]["values"] == [2]  # the trainer's one-line errors are not retried
