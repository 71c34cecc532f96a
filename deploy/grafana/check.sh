#!/usr/bin/env bash
# Checks that the Grafana dashboard parses, that its panel queries are valid PromQL, and that
# every otelcol_* metric it or the alert rules query is one the extension exports: a metric of
# go-bindings/certstoreextension/metadata.yaml under the name the collector's Prometheus
# endpoint gives it: otelcol_ prefix, no unit suffix, no _total on sums, _bucket, _sum and
# _count for histograms (the names the extension README lists and the e2e finds on the
# endpoint). Needs jq and promtool. Run by `make test-rules`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DASHBOARD="$ROOT/deploy/grafana/certstore.json"
RULES="$ROOT/deploy/prometheus/certstore.rules.yaml"
METADATA="$ROOT/go-bindings/certstoreextension/metadata.yaml"

command -v jq >/dev/null || { echo "check.sh: jq is missing (apt-get install jq)" >&2; exit 1; }
queries="$(jq -er '[.. | objects | (.expr?, .definition?, .query?) | strings] | join("\n")' "$DASHBOARD")" ||
	{ echo "check.sh: $DASHBOARD does not parse as a dashboard with queries" >&2; exit 1; }

# "name type" for each metric of metadata.yaml's telemetry section (mdatagen's layout: the
# name at 4 spaces, its gauge:/sum:/histogram: key at 6).
exported="$(awk '
	/^telemetry:/ { in_tel = 1; next }
	/^[^ #]/ { in_tel = 0 }
	in_tel && /^    [a-z0-9_]+:$/ { name = substr($1, 1, length($1) - 1) }
	in_tel && name != "" && /^      (gauge|sum|histogram):/ { sub(":", "", $1); print "otelcol_" name, $1; name = "" }
' "$METADATA")"
[[ -n "$exported" ]] || { echo "check.sh: no metrics found in $METADATA" >&2; exit 1; }

# The Prometheus names of the metrics.
declare -A known=()
while read -r name type; do
	case $type in
	gauge | sum) known[$name]=1 ;;
	histogram) known[${name}_bucket]=1 known[${name}_sum]=1 known[${name}_count]=1 ;;
	esac
done <<<"$exported"

status=0
check() { # check FILE TEXT
	local used
	used="$(grep -oE 'otelcol_[a-z0-9_]+' <<<"$2" | sort -u)"
	[[ -n "$used" ]] || { echo "check.sh: $1 queries no otelcol_ metric" >&2; status=1; return; }
	for m in $used; do
		if [[ -z "${known[$m]:-}" ]]; then
			echo "check.sh: $1 queries $m, which the extension does not export (metrics: ${!known[*]})" >&2
			status=1
		fi
	done
	echo "check.sh: $1: $(wc -w <<<"$used") metrics, all exported"
}
check "$DASHBOARD" "$queries"

# Every panel query is valid PromQL: promtool checks them as recording rules, with Grafana's
# variables replaced by values of their kind.
command -v promtool >/dev/null || { echo "check.sh: promtool is missing (apt-get install prometheus)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
jq -er '{groups: [{name: "dashboard", rules: [[.. | objects | select(has("expr")) | .expr]
	| to_entries[] | {record: "dashboard:query_\(.key)", expr: .value}]}]}' "$DASHBOARD" |
	sed -e 's/\$__rate_interval/5m/g' -e 's/\$[a-z_]*/.*/g' >"$tmp/queries.rules.json"
if ! out="$(promtool check rules "$tmp/queries.rules.json" 2>&1)"; then
	echo "check.sh: $DASHBOARD: a panel query is not valid PromQL:" >&2
	echo "$out" >&2
	status=1
else
	echo "check.sh: $DASHBOARD: $(jq '.groups[0].rules | length' "$tmp/queries.rules.json") panel queries are valid PromQL"
fi

# The rules: their expressions and the metrics their annotations name.
check "$RULES" "$(grep -vE '^\s*#' "$RULES")"
exit $status
