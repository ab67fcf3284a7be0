#!/usr/bin/env bash
# Apache Kafka (KRaft) from the Maven-fetched distribution, configured the way the
# apache/kafka image is: every KAFKA_* environment variable is a server property
# (prefix dropped, `___` -> `-`, `__` -> `_`, `_` -> `.`, lower case) and CLUSTER_ID
# formats the log directories on first start. Used by docker/build-images.sh.
set -euo pipefail
conf=/opt/kafka/config/server.properties
: > "$conf"
while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_OPTS|KAFKA_LOG4J_OPTS) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key=${name#KAFKA_}
  key=${key//___/-}
  key=${key//__/@}
  key=${key//_/.}
  key=${key//@/_}
  printf '%s=%s\n' "${key,,}" "$value" >> "$conf"
done < <(env)
: "${CLUSTER_ID:?CLUSTER_ID is required (a base64 UUID, e.g. from kafka-storage random-uuid)}"
cp_="/opt/kafka/libs/*"
java_opts=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20
           -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties)
java "${java_opts[@]}" -cp "$cp_" kafka.tools.StorageTool format \
  -t "$CLUSTER_ID" -c "$conf" --ignore-formatted
exec java "${java_opts[@]}" -cp "$cp_" kafka.Kafka "$conf"
