#!/usr/bin/env python3
"""Checks docker/kubernetes/ offline: every object against the Kubernetes schemas (kubernetes-validate, strict), and
every flag, port, path and variable the manifests name against the built binaries and the connector file reference.

    python3 scripts/lib/check_kubernetes.py [--bin DIR]

DIR holds the built `tailgate` and `commerce-example` (default: `swift build --show-bin-path`). kubernetes-validate
(PyPI, it ships the schemas) is installed once into a virtual environment in Tailgate's cache, like
scripts/lib/pg-wheel.sh's wheels: /var/cache/tailgate as root, else ${XDG_CACHE_HOME:-~/.cache}/tailgate
(TG_PG_CACHE overrides both). Prints one line per problem and exits 1 if there is any.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

KUBERNETES_VALIDATE = "kubernetes-validate==1.37.0"
KUBERNETES_VERSION = "1.30.0"  # the oldest Kubernetes the manifests must pass (policy/v1, startupProbe, seccompProfile)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MANIFESTS = os.path.join(ROOT, "docker", "kubernetes")


def cache_dir():
    if os.environ.get("TG_PG_CACHE"):
        return os.environ["TG_PG_CACHE"]
    if os.geteuid() == 0:
        return "/var/cache/tailgate"
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tailgate")


def ensure_validator():
    """Re-runs this script in the cached virtual environment that has kubernetes-validate, creating it once."""
    try:
        import kubernetes_validate  # noqa: F401
        import yaml  # noqa: F401
        return
    except ImportError:
        pass
    venv = os.path.join(cache_dir(), "kubernetes-validate")
    python = os.path.join(venv, "bin", "python")
    if os.environ.get("TG_KUBERNETES_VENV") == venv:
        sys.exit(f"check_kubernetes: {python} still lacks kubernetes_validate; remove {venv} and run again")
    if not os.path.exists(os.path.join(venv, ".installed")):
        print(f"check_kubernetes: installing {KUBERNETES_VALIDATE} into {venv} (once)", file=sys.stderr)
        os.makedirs(os.path.dirname(venv), exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
        install = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                  KUBERNETES_VALIDATE, "pyyaml"])
        if install.returncode != 0:
            sys.exit(f"check_kubernetes: could not install {KUBERNETES_VALIDATE} with pip (is PyPI reachable?)")
        open(os.path.join(venv, ".installed"), "w").close()
    os.environ["TG_KUBERNETES_VENV"] = venv
    os.execv(python, [python] + sys.argv)


ensure_validator()
import kubernetes_validate  # noqa: E402
import yaml  # noqa: E402

problems = []


def problem(text):
    problems.append(text)


def binary_dir():
    if "--bin" in sys.argv:
        return sys.argv[sys.argv.index("--bin") + 1]
    return subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def help_text(*command):
    result = subprocess.run(list(command), capture_output=True, text=True)
    return result.stdout + result.stderr


BIN = binary_dir()
TAILGATE = os.path.join(BIN, "tailgate")
COMMERCE = os.path.join(BIN, "commerce-example")
for path in [TAILGATE, COMMERCE]:
    if not os.access(path, os.X_OK):
        sys.exit(f"check_kubernetes: {path} is not built; run swift build first (or pass --bin DIR)")
RUN_HELP = help_text(TAILGATE, "help", "run")
COMMERCE_HELP = help_text(COMMERCE, "--help")
with open(os.path.join(ROOT, "connectors", "README.md")) as handle:
    CONNECTOR_REFERENCE = handle.read()

# 1. Every object against the schemas, strictly (an unknown or misspelt field is an error).
documents = {}
for name in sorted(os.listdir(MANIFESTS)):
    if not name.endswith(".yaml"):
        continue
    with open(os.path.join(MANIFESTS, name)) as handle:
        loaded = [document for document in yaml.safe_load_all(handle) if document]
    documents[name] = loaded
    for document in loaded:
        label = f"{name}: {document.get('kind')}/{document.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problem(f"{label}: {error.message} at {'.'.join(str(part) for part in error.path)}")
        except Exception as error:  # a kind without a schema is a mistake in the manifest
            problem(f"{label}: {error}")
if "connector.yaml" not in documents or "consumer-service.yaml" not in documents:
    problem("docker/kubernetes/ must hold connector.yaml and consumer-service.yaml")


def objects(kind):
    return [document for loaded in documents.values() for document in loaded if document.get("kind") == kind]


def flag_values(args):
    """--flag value pairs of an argument list."""
    return {args[index]: args[index + 1] for index in range(len(args) - 1) if args[index].startswith("--")}


def names_path(path, text):
    """Whether text names the HTTP path (as a whole: /health is not /healthz)."""
    return bool(path) and re.search(re.escape(path) + r"(?![\w/.-])", text) is not None


def check_probes_and_ports(label, container, annotations, help_text_, listen_port):
    ports = {port.get("name"): port["containerPort"] for port in container.get("ports", [])}
    if listen_port is not None and str(listen_port) not in {str(port) for port in ports.values()}:
        problem(f"{label}: the process listens on {listen_port}, but the container declares ports {sorted(ports.values())}")
    for kind in ["startupProbe", "readinessProbe", "livenessProbe"]:
        probe = container.get(kind)
        if not probe:
            if kind != "startupProbe":
                problem(f"{label}: no {kind}")
            continue
        get = probe.get("httpGet", {})
        port = ports.get(get.get("port"), get.get("port"))
        if str(port) != str(listen_port):
            problem(f"{label}: {kind} asks port {get.get('port')}, the process listens on {listen_port}")
        if not names_path(get.get("path"), help_text_):
            problem(f"{label}: {kind} path {get.get('path')} is not named in the binary's --help")
    if annotations.get("prometheus.io/scrape") != "true":
        problem(f"{label}: no prometheus.io/scrape annotation")
    if str(annotations.get("prometheus.io/port")) != str(listen_port):
        problem(f"{label}: prometheus.io/port {annotations.get('prometheus.io/port')} is not the metrics port {listen_port}")
    if not names_path(annotations.get("prometheus.io/path"), help_text_):
        problem(f"{label}: prometheus.io/path {annotations.get('prometheus.io/path')} is not named in the binary's --help")
    if not container.get("resources", {}).get("requests"):
        problem(f"{label}: no resource requests")


def environment_of(container):
    """Name -> value; a value from a Secret or ConfigMap stands as a placeholder."""
    return {entry["name"]: entry.get("value", "from-secret") for entry in container.get("env", [])}


# 2. The connector.
deployments = {document["metadata"]["name"]: document for document in objects("Deployment")}
connector = next((document for document in deployments.values()
                  if any("run" in (c.get("args") or []) for c in document["spec"]["template"]["spec"]["containers"])), None)
if connector is None:
    problem("connector.yaml: no Deployment runs `tailgate run`")
else:
    label = f"Deployment/{connector['metadata']['name']}"
    spec = connector["spec"]
    if spec.get("replicas") != 1:
        problem(f"{label}: replicas must be 1 (one reader per slot; see the comment)")
    if spec.get("strategy", {}).get("type") != "Recreate":
        problem(f"{label}: strategy must be Recreate (a RollingUpdate's new pod never streams while the old one holds the slot)")
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    args = [str(part) for part in container.get("args", [])]
    flags = flag_values(args)
    for flag in [part for part in args if part.startswith("--")]:
        if not re.search(re.escape(flag) + r"\b", RUN_HELP):
            problem(f"{label}: `tailgate run` has no {flag} (tailgate help run)")
    environment = environment_of(container)
    listen = environment.get("TAILGATE_METRICS_LISTEN", "")
    if not listen.startswith("0.0.0.0:"):
        problem(f"{label}: TAILGATE_METRICS_LISTEN must be 0.0.0.0:PORT so that the kubelet and Prometheus reach it")
    check_probes_and_ports(label, container, spec["template"]["metadata"].get("annotations", {}), RUN_HELP,
                           listen.rsplit(":", 1)[-1])

    # Timings: liveness must outlast what the connector recovers from on its own; the grace period the drain.
    receive = int(flags.get("--receive-timeout", 30))
    kafka = int(flags.get("--kafka-timeout", 30))
    shutdown = int(flags.get("--shutdown-timeout", 30))
    max_backoff = 30  # Connector.Options.maxBackoff
    liveness = container.get("livenessProbe", {})
    tolerated = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
    if tolerated <= receive + max_backoff + kafka:
        problem(f"{label}: livenessProbe restarts after {tolerated} s of 503, not more than --receive-timeout ({receive}) + "
                f"the reconnect backoff ({max_backoff}) + --kafka-timeout ({kafka}): it would kill a connector recovering on its own")
    if pod.get("terminationGracePeriodSeconds", 30) <= shutdown:
        problem(f"{label}: terminationGracePeriodSeconds {pod.get('terminationGracePeriodSeconds', 30)} must exceed --shutdown-timeout ({shutdown})")

    # The connector file: mounted at --config from a ConfigMap, valid for `tailgate validate`, every variable set.
    config_path = flags.get("--config", "")
    mounts = {mount["name"]: mount["mountPath"] for mount in container.get("volumeMounts", [])}
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    config_text = None
    for name, path in mounts.items():
        config_map = volumes.get(name, {}).get("configMap")
        if config_map and config_path.startswith(path.rstrip("/") + "/"):
            key = config_path[len(path.rstrip("/")) + 1:]
            data = next((document.get("data", {}) for document in objects("ConfigMap")
                         if document["metadata"]["name"] == config_map["name"]), {})
            config_text = data.get(key)
            if config_text is None:
                problem(f"{label}: --config {config_path} is key {key} of ConfigMap {config_map['name']}, which has no such key")
    if config_text is None and config_path:
        problem(f"{label}: --config {config_path} is not mounted from a ConfigMap")
    if flags.get("--state-dir") and not any(flags["--state-dir"].startswith(path) for path in mounts.values()):
        problem(f"{label}: --state-dir {flags['--state-dir']} is not a mounted volume (the root filesystem is read-only)")
    if config_text is not None:
        referenced = re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}", config_text)
        for name, default in referenced:
            if not default and name not in environment:
                problem(f"{label}: the connector file needs {name}, which the container's env does not set")
        used = {name for name, _ in referenced}
        for name in environment:
            if name not in used and not (name.startswith("PG") and f"`{name}`" in CONNECTOR_REFERENCE):
                problem(f"{label}: env {name} is used neither by the connector file (${{env:{name}}}) nor named in connectors/README.md")
        for key in json.loads(re.sub(r"\$\{env:[^}]*\}", "x", config_text)):
            if f"`{key}" not in CONNECTOR_REFERENCE:
                problem(f"{label}: connector file key {key} is not in connectors/README.md")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            handle.write(config_text)
        try:
            check = subprocess.run([TAILGATE, "validate", "--config", handle.name], capture_output=True, text=True,
                                   env={**os.environ, **environment})
        finally:
            os.unlink(handle.name)
        if check.returncode != 0:
            problem(f"{label}: tailgate validate refuses the connector file: {(check.stdout + check.stderr).strip()}")
    for name, volume in volumes.items():
        if "secret" in volume or "configMap" in volume:
            wanted = volume.get("secret", {}).get("secretName") or volume["configMap"]["name"]
            if not any(document["metadata"]["name"] == wanted for document in objects("Secret") + objects("ConfigMap")):
                problem(f"{label}: volume {name} names {wanted}, which no manifest defines")
    budgets = [document for document in objects("PodDisruptionBudget")
               if document["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]]
    if not budgets:
        problem(f"{label}: no PodDisruptionBudget selects it")

# Secret references resolve to keys the example Secrets define.
secrets = {document["metadata"]["name"]: set(document.get("stringData", {})) | set(document.get("data", {}))
           for document in objects("Secret")}
for deployment in deployments.values():
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for entry in container.get("env", []):
            reference = entry.get("valueFrom", {}).get("secretKeyRef")
            if reference and reference.get("key") not in secrets.get(reference.get("name"), set()):
                problem(f"Deployment/{deployment['metadata']['name']}: env {entry['name']} reads key {reference.get('key')} "
                        f"of Secret {reference.get('name')}, which the manifests do not define")

# 3. The example consumer service.
consumer = deployments.get("commerce-backoffice")
if consumer is None:
    problem("consumer-service.yaml: no Deployment commerce-backoffice")
else:
    label = "Deployment/commerce-backoffice"
    container = consumer["spec"]["template"]["spec"]["containers"][0]
    args = [str(part) for part in container.get("args", [])]
    if container.get("command") != ["commerce-example"] or not args or args[0] not in COMMERCE_HELP:
        problem(f"{label}: must run a commerce-example command")
    for flag in [part for part in args if part.startswith("--")]:
        if flag not in COMMERCE_HELP:
            problem(f"{label}: commerce-example has no {flag} (commerce-example --help)")
    listen = flag_values(args).get("--metrics-listen", "")
    if not listen.startswith("0.0.0.0:"):
        problem(f"{label}: --metrics-listen must be 0.0.0.0:PORT")
    check_probes_and_ports(label, container, consumer["spec"]["template"]["metadata"].get("annotations", {}),
                           RUN_HELP + COMMERCE_HELP, listen.rsplit(":", 1)[-1])
    for name in environment_of(container):
        if name not in ("PGPASSWORD",):
            problem(f"{label}: env {name} is not read by commerce-example")

for line in problems:
    print(line)
sys.exit(1 if problems else 0)
