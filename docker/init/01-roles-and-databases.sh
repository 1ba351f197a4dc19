#!/usr/bin/env bash
# Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d).
# Creates the commerce owner, the least-privilege connector role, the back-office database and its role.
set -euo pipefail
: "${COMMERCE_PASSWORD:?set COMMERCE_PASSWORD}" "${TAILGATE_PASSWORD:?set TAILGATE_PASSWORD}" "${METRICS_PASSWORD:?set METRICS_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v commerce_password="$COMMERCE_PASSWORD" -v tailgate_password="$TAILGATE_PASSWORD" -v metrics_password="$METRICS_PASSWORD" <<'SQL'
CREATE ROLE commerce LOGIN PASSWORD :'commerce_password';
-- The connector needs only LOGIN REPLICATION and SELECT on the outbox table (granted by commerce-setup).
CREATE ROLE tailgate LOGIN REPLICATION PASSWORD :'tailgate_password';
CREATE ROLE metrics LOGIN PASSWORD :'metrics_password';
CREATE DATABASE commerce OWNER commerce;
CREATE DATABASE backoffice OWNER metrics;
SQL
