#!/usr/bin/env python3
"""Checks docker/ without a Docker engine: compose.yml parses, and every file, port and variable it uses exists.

Prints one line per problem and exits 1 if there is any. Run by scripts/test.
"""
import json
import os
import re
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOCKER = os.path.join(ROOT, "docker")
problems = []


def problem(text):
    problems.append(text)


with open(os.path.join(DOCKER, "compose.yml")) as handle:
    text = handle.read()
compose = yaml.safe_load(text)
services = compose.get("services", {})
for name in ["postgres", "kafka", "tailgate", "metrics", "api-load", "prometheus", "grafana"]:
    if name not in services:
        problem(f"compose.yml: service {name} is missing")

# Every ${VAR} the compose file uses is documented in .env.example (compose's own defaults aside).
with open(os.path.join(DOCKER, ".env.example")) as handle:
    documented = {line.split("=", 1)[0] for line in handle if "=" in line and not line.startswith("#")}
for variable in sorted(set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))):
    if variable not in documented:
        problem(f"compose.yml uses ${{{variable}}}, which docker/.env.example does not define")

# PostgreSQL: 14+ and wal_level=logical.
postgres = services.get("postgres", {})
image = postgres.get("image", "")
version = re.match(r"postgres:(\d+)", image)
if not version or int(version.group(1)) < 14:
    problem(f"postgres image {image!r}: Tailgate needs PostgreSQL 14 or later")
if "wal_level=logical" not in " ".join(map(str, postgres.get("command", []))):
    problem("postgres: command must set wal_level=logical")

# Host paths in volumes and build contexts exist.
for name, service in services.items():
    for volume in service.get("volumes", []):
        source = str(volume).split(":", 1)[0]
        if source.startswith("."):
            if not os.path.exists(os.path.join(DOCKER, source)):
                problem(f"{name}: volume source {source} does not exist")
    build = service.get("build")
    if build:
        context = os.path.join(DOCKER, build.get("context", "."))
        dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
        if not os.path.isdir(context):
            problem(f"{name}: build context {build.get('context')} does not exist")
        if not os.path.isfile(dockerfile):
            problem(f"{name}: Dockerfile {build.get('dockerfile')} does not exist")
    for dependency in service.get("depends_on", {}) or {}:
        if dependency not in services:
            problem(f"{name}: depends on unknown service {dependency}")

# The connector: its --config file is mounted, and every ${env:NAME} without a default is set.
tailgate = services.get("tailgate", {})
command = [str(part) for part in tailgate.get("command", [])]
mounts = {}
for volume in tailgate.get("volumes", []):
    parts = str(volume).split(":")
    if parts[0].startswith("."):
        mounts[parts[1]] = os.path.join(DOCKER, parts[0])
if "--config" in command:
    config = command[command.index("--config") + 1]
    host = next((os.path.join(path, os.path.relpath(config, mount)) for mount, path in mounts.items()
                 if config.startswith(mount + "/")), None)
    if not host or not os.path.isfile(host):
        problem(f"tailgate: --config {config} is not a file mounted from the repository")
    else:
        with open(host) as handle:
            connector = handle.read()
        environment = tailgate.get("environment", {})
        for name, default in re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}", connector):
            if not default and name not in environment:
                problem(f"tailgate: the connector file needs {name}, which the service's environment does not set")
        listen = os.path.expandvars(str(environment.get("TAILGATE_METRICS_LISTEN", "127.0.0.1:9464")))
        port = listen.rsplit(":", 1)[-1]
        published = [str(entry).rsplit(":", 1)[-1] for entry in tailgate.get("ports", [])]
        if port not in published:
            problem(f"tailgate: metrics port {port} is not published (ports: {published})")
        if not listen.startswith("0.0.0.0"):
            problem("tailgate: inside a container metrics must listen on 0.0.0.0 to be reachable through the published port")
        json.loads(re.sub(r"\$\{env:[^}]*\}", "x", connector))
else:
    problem("tailgate: command has no --config")



def mounted_file(service_name, container_path):
    """The repository file or directory a service mounts at container_path (or at a parent of it), or None."""
    for volume in services.get(service_name, {}).get("volumes", []):
        parts = str(volume).split(":")
        if len(parts) < 2 or not parts[0].startswith("."):
            continue
        source, target = os.path.join(DOCKER, parts[0]), parts[1].rstrip("/")
        if container_path == target:
            return source
        if container_path.startswith(target + "/"):
            return os.path.join(source, os.path.relpath(container_path, target))
    return None


def listen_port(service_name):
    """The port a service's own process listens on inside the network, as the compose file configures it."""
    service = services.get(service_name, {})
    command = [str(part) for part in service.get("command", [])]
    if service_name == "tailgate":
        return os.path.expandvars(str(service.get("environment", {}).get("TAILGATE_METRICS_LISTEN", ""))).rsplit(":", 1)[-1]
    if "--metrics-listen" in command:
        return command[command.index("--metrics-listen") + 1].rsplit(":", 1)[-1]
    return {"prometheus": "9090", "grafana": "3000"}.get(service_name)


# Observability services: pinned images, ports only on the host's loopback, configuration from the repository.
for name in ["prometheus", "grafana"]:
    service = services.get(name)
    if service is None:
        continue  # reported above
    image = str(service.get("image", ""))
    if ":" not in image or image.endswith(":latest"):
        problem(f"{name}: image {image!r} must be pinned to a version tag")
    for entry in service.get("ports", []):
        if not str(entry).startswith("127.0.0.1:"):
            problem(f"{name}: port {entry} must be published on 127.0.0.1 only")
    for volume in service.get("volumes", []):
        parts = str(volume).split(":")
        if parts[0].startswith(".") and parts[-1] != "ro":
            problem(f"{name}: configuration volume {volume} must be read-only (:ro)")

# The example consumer serves its metrics where Prometheus scrapes them.
metrics_command = [str(part) for part in services.get("metrics", {}).get("command", [])]
if "--metrics-listen" not in metrics_command:
    problem("metrics: command has no --metrics-listen, so Prometheus cannot scrape the consumer")
elif not metrics_command[metrics_command.index("--metrics-listen") + 1].startswith("0.0.0.0:"):
    problem("metrics: inside a container --metrics-listen must be 0.0.0.0:PORT")

prometheus = services.get("prometheus", {})
config_flag = next((str(part) for part in prometheus.get("command", []) if str(part).startswith("--config.file=")), None)
config_path = mounted_file("prometheus", config_flag.split("=", 1)[1]) if config_flag else None
if not config_path or not os.path.isfile(config_path):
    problem("prometheus: --config.file is not a file mounted from the repository")
else:
    with open(config_path) as handle:
        prometheus_config = yaml.safe_load(handle)
    for rule_file in prometheus_config.get("rule_files", []):
        source = mounted_file("prometheus", rule_file)
        if not source or not os.path.isfile(source):
            problem(f"prometheus: rule file {rule_file} is not mounted from the repository")
        else:
            with open(source) as handle:
                if not yaml.safe_load(handle).get("groups"):
                    problem(f"prometheus: rule file {rule_file} has no rule groups")
    jobs = {}
    for job in prometheus_config.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            for target in static.get("targets", []):
                host, _, port = str(target).rpartition(":")
                jobs[job.get("job_name")] = host
                if host not in services:
                    problem(f"prometheus: job {job.get('job_name')} scrapes {target}, but there is no service {host}")
                elif listen_port(host) != port:
                    problem(f"prometheus: job {job.get('job_name')} scrapes {target}, but {host} listens on port {listen_port(host)}")
    for wanted in ["tailgate", "metrics"]:
        if wanted not in jobs.values():
            problem(f"prometheus: no scrape job for the {wanted} service")

grafana = services.get("grafana", {})
password = str(grafana.get("environment", {}).get("GF_SECURITY_ADMIN_PASSWORD", ""))
if not re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", password):
    problem("grafana: GF_SECURITY_ADMIN_PASSWORD must come from docker/.env as ${VAR:?message}, never a literal or a default")
provisioning = mounted_file("grafana", "/etc/grafana/provisioning")
datasource_uids = set()
if not provisioning or not os.path.isdir(provisioning):
    problem("grafana: /etc/grafana/provisioning is not mounted from the repository")
else:
    for directory, kind in [("datasources", "datasources"), ("dashboards", "providers")]:
        files = [os.path.join(provisioning, directory, f) for f in sorted(os.listdir(os.path.join(provisioning, directory)))
                 if f.endswith((".yml", ".yaml"))] if os.path.isdir(os.path.join(provisioning, directory)) else []
        if not files:
            problem(f"grafana: no {directory} provisioning file")
        for path in files:
            with open(path) as handle:
                entries = yaml.safe_load(handle).get(kind, [])
            for entry in entries:
                if kind == "datasources":
                    datasource_uids.add(entry.get("uid"))
                    url = re.match(r"https?://([^:/]+):(\d+)", str(entry.get("url", "")))
                    if not url or url.group(1) not in services or listen_port(url.group(1)) != url.group(2):
                        problem(f"grafana: data source {entry.get('name')} points at {entry.get('url')}, which no service answers")
                else:
                    dashboards = mounted_file("grafana", str(entry.get("options", {}).get("path", "")))
                    if not dashboards or not os.path.isdir(dashboards):
                        problem(f"grafana: dashboard provider {entry.get('name')} reads a path not mounted from the repository")
                        continue
                    found = [f for f in os.listdir(dashboards) if f.endswith(".json")]
                    if not found:
                        problem(f"grafana: no dashboard JSON in {os.path.relpath(dashboards, ROOT)}")
                    for file_name in found:
                        with open(os.path.join(dashboards, file_name)) as handle:
                            dashboard = json.load(handle)
                        if not dashboard.get("uid") or not dashboard.get("panels"):
                            problem(f"grafana: {file_name} has no uid or no panels")
                        for panel in dashboard.get("panels", []):
                            uid = (panel.get("datasource") or {}).get("uid")
                            if panel.get("type") != "row" and uid not in datasource_uids:
                                problem(f"grafana: {file_name} panel {panel.get('title')!r} uses data source {uid!r}, which is not provisioned")
    home = str(grafana.get("environment", {}).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", ""))
    if home and not (mounted_file("grafana", home) and os.path.isfile(mounted_file("grafana", home))):
        problem(f"grafana: the home dashboard {home} is not a mounted file")

# The Dockerfile: two stages on the same Debian release, the runtime with libpq5 and librdkafka1.
with open(os.path.join(DOCKER, "Dockerfile")) as handle:
    dockerfile = handle.read()
stages = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
if len(stages) != 2 or not all("bookworm" in stage for stage in stages):
    problem(f"Dockerfile: expected a build and a runtime stage on bookworm, found {stages}")
for package in ["libpq5", "librdkafka1"]:
    if package not in dockerfile.split("FROM", 2)[-1]:
        problem(f"Dockerfile: the runtime stage does not install {package}")
if "--static-swift-stdlib" not in dockerfile:
    problem("Dockerfile: the build must use --static-swift-stdlib")

for line in problems:
    print(f"docker check: {line}")
print(f"docker check: {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
