"""kubernetes.yml, offline: every object valid against the Kubernetes 1.37 schemas (strict:
unknown fields are errors), and wired the way docs/deploying.md's "Deploy on Kubernetes" says.

    .tools/py-k8s/bin/python -m pytest -q tests/kubernetes
"""

import subprocess
import sys
from pathlib import Path

import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "kubernetes.yml"
OBJECTS = [o for o in yaml.safe_load_all(MANIFESTS.read_text()) if o]


def find(kind, name):
    found = [o for o in OBJECTS if o["kind"] == kind and o["metadata"]["name"] == name]
    assert found, f"no {kind} {name} in {MANIFESTS.name}"
    return found[0]


def container(deployment):
    return find("Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]


def test_every_object_passes_the_kubernetes_schemas_strictly():
    done = subprocess.run(
        [Path(sys.executable).with_name("kubernetes-validate"), "--strict", "--quiet", "-k", "1.37.0", str(MANIFESTS)],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert {o["kind"] for o in OBJECTS} == {"Service", "Deployment", "PodDisruptionBudget"}


def test_the_edge_discovers_every_backend_pod_through_a_headless_service():
    service = find("Service", "mcp-backend")
    assert service["spec"]["clusterIP"] == "None", "a ClusterIP would balance connections and hide the pods"
    args = container("mcp-edge")["args"]
    discover = args[args.index("--discover") + 1]
    assert discover == f"dns://mcp-backend:{service['spec']['ports'][0]['port']}/mcp"
    peers = find("Service", "mcp-edge-peers")
    assert peers["spec"]["clusterIP"] == "None"
    assert args[args.index("--peer") + 1] == f"mcp-edge-peers:{peers['spec']['ports'][0]['port']}"


def test_selectors_match_the_pods_they_select():
    for name in ("mcp-backend", "mcp-edge"):
        labels = find("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        for selector in (
            find("Deployment", name)["spec"]["selector"]["matchLabels"],
            find("PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"],
        ):
            assert selector.items() <= labels.items(), (name, selector)
    for service in ("mcp-backend", "mcp-edge", "mcp-edge-peers"):
        selector = find("Service", service)["spec"]["selector"]
        pods = "mcp-backend" if service == "mcp-backend" else "mcp-edge"
        assert selector.items() <= find("Deployment", pods)["spec"]["template"]["metadata"]["labels"].items()


def test_probes_use_the_health_subcommand_and_keys_come_from_secrets():
    for name, binary in (("mcp-backend", "/usr/local/bin/mcp-backend"), ("mcp-edge", "/usr/local/bin/mcp-edge")):
        c = container(name)
        assert c["readinessProbe"]["exec"]["command"] == [binary, "health"]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        key_files = [v for k, v in env.items() if k.endswith("_FILE")]
        assert key_files and all(any(f.startswith(m + "/") for m in mounts) for f in key_files), key_files
        spec = find("Deployment", name)["spec"]
        assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}, "start-first"
        grace = int(next(v for k, v in env.items() if k.endswith("GRACE_SECONDS")))
        assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > grace, "the pod outlives its drain"


def with_tls(text: str) -> str:
    """The manifests with their TLS lines switched on (the `#tls: ` marks removed)."""
    import re
    return re.sub(r"^(\s*)#tls: ", r"\1", text, flags=re.M)


def test_the_tls_variant_passes_the_schemas_and_mounts_the_files_it_names(tmp_path):
    text = with_tls(MANIFESTS.read_text())
    assert text != MANIFESTS.read_text(), "kubernetes.yml shows how to turn TLS on"
    variant = tmp_path / "kubernetes-tls.yml"
    variant.write_text(text)
    done = subprocess.run(
        [Path(sys.executable).with_name("kubernetes-validate"), "--strict", "--quiet", "-k", "1.37.0", str(variant)],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    edge = next(o for o in yaml.safe_load_all(text) if o and o["kind"] == "Deployment"
                and o["metadata"]["name"] == "mcp-edge")["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in edge["containers"][0]["env"]}
    mounts = {m["name"]: m["mountPath"] for m in edge["containers"][0]["volumeMounts"]}
    secrets = {v["name"]: v["secret"]["secretName"] for v in edge["volumes"]}
    assert secrets["tls"] == "mcp-edge-tls"
    for name in ("MCP_EDGE_TLS_CERT", "MCP_EDGE_TLS_KEY"):
        assert env[name].startswith(mounts["tls"] + "/"), (name, env[name], mounts)
