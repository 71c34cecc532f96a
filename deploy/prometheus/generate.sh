#!/usr/bin/env bash
# prometheusrule.yaml (a prometheus-operator PrometheusRule) is certstore.rules.yaml under
# `spec:`, so there is one source of the rules:
#
#   bash deploy/prometheus/generate.sh           # rewrite prometheusrule.yaml
#   bash deploy/prometheus/generate.sh --check   # fail if it is not what this would write
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$DIR/certstore.rules.yaml"
OUT="$DIR/prometheusrule.yaml"

render() {
	cat <<'HEADER'
# Generated from certstore.rules.yaml by deploy/prometheus/generate.sh: do not edit.
# Label the object as your Prometheus' ruleSelector expects (e.g. `release: prometheus` for
# kube-prometheus-stack) and apply it: kubectl apply -n monitoring -f prometheusrule.yaml
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: certstore
spec:
HEADER
	# The rules file without its leading comment block, indented under spec:.
	sed -e '1,/^groups:/{/^groups:/!d}' -e 's/^\(.\)/  \1/' "$SRC"
}

case "${1:-}" in
--check)
	if ! diff -u "$OUT" <(render); then
		echo "generate.sh: $OUT is out of date: run 'bash deploy/prometheus/generate.sh'" >&2
		exit 1
	fi
	;;
"") render >"$OUT" ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac
