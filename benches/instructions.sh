#!/usr/bin/env bash
# Instructions per request, counted by callgrind: the figures of BENCHMARKS.md.
#
# Each case runs its bench's profile mode for 100 000 and 200 000 requests, and prints the
# difference of the two totals divided by 100 000: the cost of one request, without the
# set-up. Each total is the lower of two runs: on a loaded machine a run's set-up now and
# then counts a few million instructions more (seen with the tenants bench), which would
# show as a per-request figure too low by tens of instructions. Otherwise the counts repeat
# within an instruction or two from run to run.
#
#   benches/instructions.sh            # every case (about 6 minutes)
#   benches/instructions.sh layers     # the cases whose name starts with "layers"
#
# Needs valgrind. Extra cargo flags (say, `--features metrics`) go in CARGO_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."

filter="${1:-}"
target="${CARGO_TARGET_DIR:-target}"
# shellcheck disable=SC2086
cargo build --release --bench layers --bench overhead --bench tenants ${CARGO_FLAGS:-} >&2

binary() { ls -t "$target"/release/deps/"$1"-* | grep -v '\.d$' | head -1; }

# per_request <env var> <bench> <spec before the request count>
per_request() {
  local var=$1 bench=$2 spec=$3 totals=()
  for requests in 100000 200000; do
    local out least=
    for _ in 1 2; do
      out=$(env "$var=$spec:$requests" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$(binary "$bench")" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
      if [[ -z $least || $out -lt $least ]]; then least=$out; fi
    done
    totals+=("$least")
  done
  echo $(((totals[1] - totals[0]) / 100000))
}

row() {
  local name=$1
  shift
  if [[ -z $filter || $name == "$filter"* ]]; then
    printf '%-44s %6s\n' "$name" "$(per_request "$@")"
  fi
}

printf '%-44s %6s\n' case instructions
row "layers: tower-http AddAuthorization" LAYERS_PROFILE layers add_authorization:1:80
row "layers: BearerAuth, replay off, 1 layer" LAYERS_PROFILE layers bearer_auth:1:80
row "layers: BearerAuth, replay off, 10000 layers" LAYERS_PROFILE layers bearer_auth:10000:80
row "layers: BearerAuth, replay off, 1200-B token" LAYERS_PROFILE layers bearer_auth:64:1200
row "overhead: bare service" OVERHEAD_PROFILE overhead bare
row "overhead: tower-http AddAuthorization" OVERHEAD_PROFILE overhead add_authorization
row "overhead: BearerAuth, replay off" OVERHEAD_PROFILE overhead bearer_auth
row "overhead: BearerAuth, replay on (default)" OVERHEAD_PROFILE overhead bearer_auth_replay
row "tenants: tower-http AddAuthorization" TENANTS_PROFILE tenants add_authorization:10000
row "tenants: TenantsLayer, 10000 keys" TENANTS_PROFILE tenants tenants:10000
