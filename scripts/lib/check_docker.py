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
for name in ["postgres", "kafka", "tailgate", "metrics", "api-load"]:
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
