#!/usr/bin/env bash
# PostGIS side of the crime_scale comparison (issue 5): the retrospective query of
# `cargo bench --bench crime_scale` (10,000 crimes against ~86 million positions) run in
# PostgreSQL + PostGIS on the same data, and the ratio to tagstream's median reported.
#
#   CRIME_SCALE_DUMP=1 cargo bench --bench crime_scale 2>&1 | tee /tmp/crime_scale.log
#   benches/postgis/run.sh [--fresh] [--no-composite]
#
# Prints one JSON line {"bench":"postgis_crime_scale", ...} on stdout; progress, query plans
# and per-run timings go to stderr. See benches/postgis/README.md. Settings by environment:
#   CRIME_SCALE_DIR      where positions.csv and crimes.csv are (target/crime-scale)
#   POSTGIS_DIR          the throw-away cluster ($CRIME_SCALE_DIR/pg)
#   POSTGIS_PORT         private port (55432; Unix socket in $POSTGIS_DIR/sock only, no TCP)
#   POSTGIS_RUNS         timed runs of each query (3)
#   POSTGIS_WARMUP       untimed runs first, to bring the variant's pages into memory (1)
#   POSTGIS_LIMIT_ROWS   load only the first N positions (smoke test; 0 = all)
#   POSTGIS_MIN_FREE_GB  stop rather than let free disk space fall below this (8)
#   TAGSTREAM_S          tagstream's retrospective_s_median (else read from TAGSTREAM_LOG)
#   TAGSTREAM_LOG        log holding the crime_scale JSON line (/tmp/crime_scale.log)
#
# Run as root (installs packages, runs the server as the `postgres` user), or as a user who
# can run the server itself when PostgreSQL + PostGIS are already installed.
set -euo pipefail

usage() {
    echo "usage: benches/postgis/run.sh [--fresh] [--no-composite]" >&2
    exit 2
}
FRESH=0
VARIANTS=(simple composite composite_parallel)
for arg in "$@"; do
    case "$arg" in
    --fresh) FRESH=1 ;;
    --no-composite) VARIANTS=(simple) ;;
    *) usage ;;
    esac
done

cd "$(dirname "$0")/../.."
DATA=$(realpath -m "${CRIME_SCALE_DIR:-target/crime-scale}")
PGROOT=$(realpath -m "${POSTGIS_DIR:-$DATA/pg}")
PGDATA=$PGROOT/data
SOCK=$PGROOT/sock
PORT=${POSTGIS_PORT:-55432}
RUNS=${POSTGIS_RUNS:-3}
WARMUP=${POSTGIS_WARMUP:-1}
LIMIT=${POSTGIS_LIMIT_ROWS:-0}
MIN_FREE=$(awk -v g="${POSTGIS_MIN_FREE_GB:-8}" 'BEGIN { printf "%.0f", g * 1073741824 }')
TAGSTREAM_LOG=${TAGSTREAM_LOG:-/tmp/crime_scale.log}
POSITIONS=$DATA/positions.csv
CRIMES=$DATA/crimes.csv
SCHEMA_VERSION=1

log() { printf '[postgis %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
gb() { awk -v b="$1" 'BEGIN { printf "%.1f GB", b / 1073741824 }'; }

[ -s "$POSITIONS" ] && [ -s "$CRIMES" ] ||
    die "$POSITIONS / $CRIMES missing: run CRIME_SCALE_DUMP=1 cargo bench --bench crime_scale"

# --- PostgreSQL + PostGIS from the distribution's packages --------------------------------
export DEBIAN_FRONTEND=noninteractive
apt_install() {
    [ "$(id -u)" = 0 ] || die "need root to install $*"
    log "apt-get install $*"
    apt-get install -y --no-install-recommends "$@" >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends "$@" >&2; }
}
pg_major() { find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -1; }
command -v jq >/dev/null || apt_install jq
[ -n "$(pg_major)" ] || apt_install postgresql
PGV=$(pg_major)
[ -f "/usr/share/postgresql/$PGV/extension/postgis.control" ] || apt_install "postgresql-$PGV-postgis-3"
BIN=/usr/lib/postgresql/$PGV/bin
[ -x "$BIN/postgres" ] || die "no server binaries in $BIN"

if [ "$(id -u)" = 0 ]; then
    OWNER=postgres
    AS=(runuser -u postgres --)
else
    OWNER=$(id -un)
    AS=()
fi
PSQL=("$BIN/psql" -X -q -h "$SOCK" -p "$PORT" -U postgres -d bench -v ON_ERROR_STOP=1)
sql() { "${PSQL[@]}" -At "$@"; }

stop_server() {
    if [ -f "$PGDATA/postmaster.pid" ]; then
        log "stopping the cluster"
        "${AS[@]}" "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
}
trap stop_server EXIT

free_bytes() { df -B1 --output=avail "$1" | tail -1 | tr -d ' '; }
# Dies unless `$1` bytes more can be written and still leave MIN_FREE; `$2` names the step.
check_room() {
    local free
    free=$(free_bytes "$PGROOT")
    [ $((free - $1)) -ge "$MIN_FREE" ] ||
        die "$2 needs about $(gb "$1") but only $(gb "$free") is free (floor $(gb "$MIN_FREE"))"
}
has_room() { [ $(($(free_bytes "$PGROOT") - $1)) -ge "$MIN_FREE" ]; }

# load.json keeps the one-off figures (load and build times, sizes at build) across re-runs.
record() { # key json-value
    jq -c --arg k "$1" --argjson v "$2" '.[$k] = $v' "$PGROOT/load.json" >"$PGROOT/load.json.new"
    mv "$PGROOT/load.json.new" "$PGROOT/load.json"
}

# --- the cluster: reuse when the marker matches the data, else build it afresh -------------
marker_text() {
    echo "schema $SCHEMA_VERSION, postgresql $PGV, limit $LIMIT"
    stat -c '%n %s %Y' "$POSITIONS" "$CRIMES"
    cat "$DATA/params.txt" 2>/dev/null || true
}
MARKER=$PGROOT/loaded.txt
REUSE=0
if [ "$FRESH" = 0 ] && [ -f "$MARKER" ] && [ -f "$PGROOT/load.json" ] &&
    [ "$(cat "$MARKER")" = "$(marker_text)" ]; then
    REUSE=1
fi

start_server() {
    "${AS[@]}" "$BIN/pg_ctl" -D "$PGDATA" -l "$PGROOT/server.log" -w -t 300 start >/dev/null ||
        die "server did not start; see $PGROOT/server.log"
}

if [ "$REUSE" = 1 ]; then
    log "reusing the loaded cluster in $PGROOT (pass --fresh to rebuild)"
    "${AS[@]}" "$BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1 || start_server
else
    if [ -f "$PGDATA/postmaster.pid" ]; then stop_server; fi
    rm -rf "$PGROOT"
    mkdir -p "$PGROOT" "$SOCK"
    # ~47 bytes a CSV line; the heap takes ~85 bytes a row, the geography GiST ~80, the btree ~8.
    est_rows=$(($(stat -c %s "$POSITIONS") / 47))
    [ "$LIMIT" -gt 0 ] && [ "$LIMIT" -lt "$est_rows" ] && est_rows=$LIMIT
    check_room $((est_rows * 175)) "loading ~$est_rows positions with the GiST and btree indexes"
    chown -R "$OWNER" "$PGROOT"
    log "initdb in $PGDATA (PostgreSQL $PGV)"
    "${AS[@]}" "$BIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
    # Tuned for a 2-core, 24 GiB machine. Durability is off (fsync, synchronous_commit,
    # full_page_writes): this is a throw-away cluster and the timed query only reads.
    # wal_level=minimal lets the COPY into a table created in the same transaction, and the
    # index builds, skip WAL. JIT is off: the query is an index nested loop whose row
    # estimates are far too high, so JIT compiled it for hundreds of ms and saved nothing.
    cat >>"$PGDATA/postgresql.conf" <<EOF

# --- benches/postgis/run.sh ---
listen_addresses = ''
port = $PORT
unix_socket_directories = '$SOCK'
shared_buffers = 4GB
effective_cache_size = 16GB
work_mem = 256MB
maintenance_work_mem = 2GB
max_worker_processes = 4
max_parallel_workers = 2
max_parallel_workers_per_gather = 2
max_parallel_maintenance_workers = 2
random_page_cost = 1.1
effective_io_concurrency = 64
jit = off
wal_level = minimal
max_wal_senders = 0
fsync = off
synchronous_commit = off
full_page_writes = off
checkpoint_timeout = 1h
max_wal_size = 16GB
autovacuum = off
EOF
    start_server
    "${AS[@]}" "$BIN/psql" -X -q -h "$SOCK" -p "$PORT" -U postgres -d postgres \
        -c "CREATE DATABASE bench" >/dev/null
    sql -c "CREATE EXTENSION postgis" -c "CREATE EXTENSION btree_gist" >/dev/null

    # Positions: the CSV's lon,lat become WKT on the way in, so COPY builds the geography
    # itself (no staging table). FREEZE + CREATE in the same transaction: no WAL, no later
    # hint-bit rewrite.
    log "loading positions from $POSITIONS"
    t0=$(now)
    if [ "$LIMIT" -gt 0 ]; then head -n "$LIMIT" "$POSITIONS"; else cat "$POSITIONS"; fi |
        awk -F, '{ print $1 "," $2 ",POINT(" $3 " " $4 ")" }' |
        sql -c "BEGIN" \
            -c "CREATE TABLE positions (activation text NOT NULL, t_ms bigint NOT NULL,
                    geog geography(Point, 4326) NOT NULL)" \
            -c "\\copy positions FROM pstdin WITH (FORMAT csv, FREEZE)" \
            -c "COMMIT" >/dev/null
    load_positions_s=$(elapsed "$t0")
    rows=$(sql -c "SELECT count(*) FROM positions")
    log "loaded $rows positions in $load_positions_s s"

    t0=$(now)
    sql -c "CREATE TABLE crimes (crime_ref text PRIMARY KEY, from_ms bigint NOT NULL,
                to_ms bigint NOT NULL, lon float8 NOT NULL, lat float8 NOT NULL,
                radius_m float8 NOT NULL, geog geography(Point, 4326))" \
        -c "\\copy crimes (crime_ref, from_ms, to_ms, lon, lat, radius_m) FROM pstdin WITH (FORMAT csv)" \
        -c "UPDATE crimes SET geog = ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography" \
        -c "VACUUM ANALYZE crimes" <"$CRIMES" >/dev/null
    load_crimes_s=$(elapsed "$t0")
    log "loaded $(sql -c 'SELECT count(*) FROM crimes') crimes in $load_crimes_s s"
    t0=$(now)
    sql -c "VACUUM ANALYZE positions"
    analyze_s=$(elapsed "$t0")
    log "VACUUM ANALYZE positions in $analyze_s s"
    jq -cn --argjson rows "$rows" --argjson lp "$load_positions_s" --argjson lc "$load_crimes_s" \
        --argjson a "$analyze_s" --argjson heap "$(sql -c "SELECT pg_relation_size('positions')")" \
        '{rows: $rows, load_positions_s: $lp, load_crimes_s: $lc, analyze_s: $a,
          heap_bytes: $heap, indexes: {}}' >"$PGROOT/load.json"
    marker_text >"$MARKER"
fi

ROWS=$(jq .rows "$PGROOT/load.json")
exists() { [ -n "$(sql -c "SELECT to_regclass('$1')")" ]; }

# --- indexes and query variants -----------------------------------------------------------
# simple:    GiST on geog + btree on t_ms (the planner picks how to combine them per crime).
# composite: one GiST on (geog, t_ms) (btree_gist supplies the bigint operator class), so the
#            time window is applied inside the index rather than on the rows a spatial scan
#            returns.
# composite_parallel: the same, with the planner allowed to split the (small) crimes table
#            between parallel workers, as tagstream splits the crimes over its threads; left
#            alone, the planner keeps the nested loop serial because `crimes` is far below
#            min_parallel_table_scan_size.
declare -A DDL=(
    [positions_geog_gist]="CREATE INDEX positions_geog_gist ON positions USING gist (geog)"
    [positions_t_btree]="CREATE INDEX positions_t_btree ON positions (t_ms)"
    [positions_geog_t_gist]="CREATE INDEX positions_geog_t_gist ON positions USING gist (geog, t_ms)"
)
declare -A BYTES_PER_ROW=([positions_geog_gist]=85 [positions_t_btree]=10 [positions_geog_t_gist]=125)
declare -A VARIANT_INDEXES=(
    [simple]="positions_geog_gist positions_t_btree"
    [composite]="positions_geog_t_gist"
    [composite_parallel]="positions_geog_t_gist"
)
declare -A VARIANT_NAME=([simple]="gist_geog+btree_t" [composite]="gist_geog_t_composite"
    [composite_parallel]="gist_geog_t_composite+parallel")
declare -A VARIANT_SETTINGS=([composite_parallel]="SET LOCAL min_parallel_table_scan_size = 0")

build_index() { # index variant
    local idx=$1 variant=$2 need other t0 s
    exists "$idx" && return 0
    need=$((ROWS * ${BYTES_PER_ROW[$idx]}))
    if ! has_room "$need"; then
        # Make room by dropping indexes this variant does not use (their variants re-build
        # them when they run again; their build figures stay in load.json).
        for other in "${!DDL[@]}"; do
            case " ${VARIANT_INDEXES[$variant]} " in *" $other "*) continue ;; esac
            if exists "$other"; then
                log "dropping $other to make room for $idx"
                sql -c "DROP INDEX $other"
            fi
            has_room "$need" && break
        done
    fi
    check_room "$need" "building $idx"
    log "building $idx"
    t0=$(now)
    sql -c "${DDL[$idx]}"
    s=$(elapsed "$t0")
    log "$idx built in $s s, $(gb "$(sql -c "SELECT pg_relation_size('$idx')")")"
    record_index "$idx" "$s"
    sql -c "ANALYZE positions"
}
record_index() { # index seconds
    jq -c --arg k "$1" --argjson s "$2" --argjson b "$(sql -c "SELECT pg_relation_size('$1')")" \
        '.indexes[$k] = {build_s: $s, bytes: $b}' "$PGROOT/load.json" >"$PGROOT/load.json.new"
    mv "$PGROOT/load.json.new" "$PGROOT/load.json"
}

# --- the retrospective query ------------------------------------------------------------
# Every (crime, activation) pair with at least one fix within the crime's radius (metres, on
# the spheroid: ST_DWithin's default for geography) inside the crime's window.
QUERY="SELECT count(*) FROM (
  SELECT DISTINCT c.crime_ref, p.activation
  FROM crimes c
  JOIN positions p
    ON ST_DWithin(p.geog, c.geog, c.radius_m)
   AND p.t_ms BETWEEN c.from_ms AND c.to_ms
) pairs"

# Indexes of other variants present now, dropped inside the timed query's transaction (and
# rolled back) so that each variant is measured with only its own indexes.
others_of() {
    local variant=$1 idx list=()
    for idx in "${!DDL[@]}"; do
        case " ${VARIANT_INDEXES[$variant]} " in *" $idx "*) continue ;; esac
        exists "$idx" && list+=("$idx")
    done
    (IFS=,; echo "${list[*]}")
}
run_query() { # drop-list settings; prints "<pairs> <seconds>"
    local drop=$1 settings=$2 out pairs ms
    out=$(sql -c "BEGIN" ${drop:+-c "DROP INDEX $drop"} ${settings:+-c "$settings"} \
        -c "\\timing on" -c "$QUERY" \
        -c "\\timing off" -c "ROLLBACK")
    pairs=$(head -1 <<<"$out")
    ms=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out")
    [ -n "$ms" ] && [ -n "$pairs" ] || die "unexpected psql output: $out"
    echo "$pairs $(awk -v ms="$ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
}
explain() { # drop-list settings
    sql -c "BEGIN" ${1:+-c "DROP INDEX $1"} ${2:+-c "$2"} -c "EXPLAIN $QUERY" -c "ROLLBACK"
}
median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

if [ -n "${TAGSTREAM_S:-}" ]; then
    TAGSTREAM_JSON=$(jq -cn --argjson s "$TAGSTREAM_S" '{retrospective_s_median: $s}')
elif [ -f "$TAGSTREAM_LOG" ] && grep -q '"bench":"crime_scale"' "$TAGSTREAM_LOG"; then
    TAGSTREAM_JSON=$(grep '"bench":"crime_scale"' "$TAGSTREAM_LOG" | tail -1)
else
    log "no tagstream figure (set TAGSTREAM_S or TAGSTREAM_LOG); the ratio will be null"
    TAGSTREAM_JSON='{}'
fi
TS=$(jq '.retrospective_s_median // null' <<<"$TAGSTREAM_JSON")
HITS=$(jq '.hits // null' <<<"$TAGSTREAM_JSON")

# Variants whose indexes are all present go first (a re-run on a tight disk then rebuilds
# as little as it can).
ordered=()
for v in "${VARIANTS[@]}"; do
    ready=1
    for idx in ${VARIANT_INDEXES[$v]}; do exists "$idx" || ready=0; done
    [ "$ready" = 1 ] && ordered+=("$v")
done
for v in "${VARIANTS[@]}"; do
    case " ${ordered[*]} " in *" $v "*) ;; *) ordered+=("$v") ;; esac
done

declare -A RESULT
for v in "${ordered[@]}"; do
    for idx in ${VARIANT_INDEXES[$v]}; do build_index "$idx" "$v"; done
    drop=$(others_of "$v")
    settings=${VARIANT_SETTINGS[$v]:-}
    log "query plan (${VARIANT_NAME[$v]}):"
    explain "$drop" "$settings" | sed 's/^/    /' >&2
    # Warm-up: right after a restart or an index build the first run reads the variant's
    # pages from disk (22-25 s instead of 5 s for the composite); reported, not in the median.
    warm=()
    for i in $(seq "$WARMUP"); do
        out=$(run_query "$drop" "$settings")
        read -r p s <<<"$out"
        warm+=("$s")
        log "${VARIANT_NAME[$v]} warm-up $i: $s s, $p pairs"
    done
    runs=()
    pairs=
    for i in $(seq "$RUNS"); do
        out=$(run_query "$drop" "$settings")
        read -r p s <<<"$out"
        [ -z "$pairs" ] || [ "$pairs" = "$p" ] || die "pair count changed between runs: $pairs vs $p"
        pairs=$p
        runs+=("$s")
        log "${VARIANT_NAME[$v]} run $i: $s s, $p pairs"
    done
    med=$(echo "${runs[*]}" | median)
    RESULT[$v]=$(jq -cn --arg n "${VARIANT_NAME[$v]}" --arg idx "${VARIANT_INDEXES[$v]}" \
        --argjson p "$pairs" --argjson m "$med" --argjson r "[$(IFS=,; echo "${runs[*]}")]" \
        --argjson w "[$(IFS=,; echo "${warm[*]}")]" --arg drop "$drop" --arg settings "$settings" \
        --argjson ts "$TS" --slurpfile l "$PGROOT/load.json" \
        '{index: $n, pairs: $p, warmup_s: $w, query_s_runs: $r, query_s_median: $m,
          ratio_to_tagstream: (if $ts == null then null else ($m / $ts * 1000 | round) / 1000 end),
          index_build_s: ([$idx | split(" ")[] | $l[0].indexes[.].build_s] | add),
          index_bytes: ([$idx | split(" ")[] | $l[0].indexes[.].bytes] | add)}
         | .table_plus_index_bytes = $l[0].heap_bytes + .index_bytes
         | .drop = $drop | .settings = $settings')
done

results='[]'
for v in "${VARIANTS[@]}"; do results=$(jq -c --argjson r "${RESULT[$v]}" '. + [$r]' <<<"$results"); done
best=$(jq -c 'min_by(.query_s_median)' <<<"$results")
results=$(jq -c 'map(del(.drop, .settings))' <<<"$results")

# Cross-check against tagstream's hit count, with the fastest variant: the pairs, how many
# crimes have any, and the split between crimes placed on a wearer's fix (even numbers) and
# crimes placed anywhere (odd).
drop=$(jq -r .drop <<<"$best")
settings=$(jq -r .settings <<<"$best")
CROSS=$(sql -F ' ' -c "BEGIN" ${drop:+-c "DROP INDEX $drop"} ${settings:+-c "$settings"} -c "
WITH pairs AS (
  SELECT DISTINCT c.crime_ref, p.activation
  FROM crimes c
  JOIN positions p
    ON ST_DWithin(p.geog, c.geog, c.radius_m)
   AND p.t_ms BETWEEN c.from_ms AND c.to_ms)
SELECT count(*), count(DISTINCT crime_ref),
       count(*) FILTER (WHERE split_part(crime_ref, '/', 2)::int % 2 = 0),
       count(*) FILTER (WHERE split_part(crime_ref, '/', 2)::int % 2 = 1)
FROM pairs" -c "ROLLBACK")
read -r x_pairs x_crimes x_placed x_random <<<"$CROSS"
log "cross-check: $x_pairs pairs over $x_crimes crimes ($x_placed for crimes placed on a fix," \
    "$x_random for crimes placed anywhere); tagstream hits: $HITS"
VERSIONS=$(sql -c "SELECT split_part(version(), ' ', 2) || ' / PostGIS ' || postgis_lib_version()")

jq -cn --argjson rows "$ROWS" --argjson crimes "$(sql -c 'SELECT count(*) FROM crimes')" \
    --slurpfile l "$PGROOT/load.json" --argjson results "$results" --argjson ts "$TS" \
    --argjson hits "$HITS" --argjson reused "$([ "$REUSE" = 1 ] && echo true || echo false)" \
    --arg versions "$VERSIONS" --argjson datadir "$(du -sb "$PGDATA" | cut -f1)" \
    --argjson best "$(jq -c 'del(.drop, .settings)' <<<"$best")" \
    --argjson tagstream "$TAGSTREAM_JSON" \
    --argjson xp "$x_pairs" --argjson xc "$x_crimes" --argjson xpl "$x_placed" \
    --argjson xr "$x_random" \
    '$l[0] as $l | $results[0] as $main |
     {bench: "postgis_crime_scale", postgres: $versions, rows: $rows, crimes: $crimes,
      index: $main.index, pairs: $main.pairs,
      query_s_runs: $main.query_s_runs, query_s_median: $main.query_s_median,
      ratio_to_tagstream: $main.ratio_to_tagstream,
      variants: $results,
      best_index: $best.index, best_query_s_median: $best.query_s_median,
      best_ratio_to_tagstream: $best.ratio_to_tagstream,
      load_positions_s: $l.load_positions_s, load_crimes_s: $l.load_crimes_s,
      analyze_s: $l.analyze_s, indexes: $l.indexes, heap_bytes: $l.heap_bytes,
      table_plus_index_bytes: $main.table_plus_index_bytes,
      data_dir_bytes: $datadir, cluster_reused: $reused,
      tagstream_retrospective_s_median: $ts, tagstream_hits: $hits,
      tagstream_retrospective_s_runs: ($tagstream.retrospective_s_runs // null),
      tagstream_retrospective_cpu_s_runs: ($tagstream.retrospective_cpu_s_runs // null),
      tagstream_threads: ($tagstream.threads // null),
      cross_check: {postgis_pairs: $xp, crimes_with_pairs: $xc, pairs_for_placed_crimes: $xpl,
                    pairs_for_random_crimes: $xr, tagstream_hits: $hits}}'
