#!/usr/bin/env bash
# ensure-deps.sh NEED... : make sure this machine has what tasker-sim needs, or say how to
# get it. Used by .ci/run (postgres chromium promtool) and `make demo` (postgres), so a fresh
# machine sets itself up the same way for both.
#
# NEED is one of:
#   postgres   a PostgreSQL server for throwaway clusters (initdb and pg_ctl on PATH or in
#              /usr/lib/postgresql/<ver>/bin); also satisfied by a database URL in one of
#              the variables named by ENSURE_DEPS_URL_VARS (default TASKER_TEST_DATABASE_URL),
#              or by a Docker socket (pgprovision then starts a container). Debian: postgresql.
#   chromium   headless Chromium for the HTML report's browser test. Debian: chromium.
#   promtool   Prometheus's rule checker for the alert-rule tests. Debian: prometheus.
#
# As root with apt-get, what is missing is installed (one apt-get update, then the
# packages). Anywhere else the script prints the one command to run and exits 1.
# As root, the postgres system user that the test clusters run as is created if missing.
#
# The decision can be tested without installing anything. Overrides:
#   ENSURE_DEPS_UID=N          the user id instead of `id -u`
#   ENSURE_DEPS_PG_GLOB=GLOB   Debian's versioned PostgreSQL bin directories
#   ENSURE_DEPS_DOCKER_SOCK=P  the Docker socket (default /var/run/docker.sock, or DOCKER_HOST)
#   ENSURE_DEPS_HAVE_USER=0|1  whether the postgres user exists, instead of asking `id`
#   ENSURE_DEPS_DRY_RUN=1      print the commands that would run instead of running them
# Commands are looked up on PATH, so a test controls what is "installed" through PATH.
set -euo pipefail

say() { echo "ensure-deps: $*"; }

uid=${ENSURE_DEPS_UID:-$(id -u)}
pg_glob=${ENSURE_DEPS_PG_GLOB:-/usr/lib/postgresql/*/bin}
url_vars=${ENSURE_DEPS_URL_VARS:-TASKER_TEST_DATABASE_URL}
docker_sock=${ENSURE_DEPS_DOCKER_SOCK:-/var/run/docker.sock}
if [ -z "${ENSURE_DEPS_DOCKER_SOCK:-}" ] && [[ "${DOCKER_HOST:-}" == unix://* ]]; then
  docker_sock=${DOCKER_HOST#unix://}
fi

run() {
  if [ "${ENSURE_DEPS_DRY_RUN:-}" = 1 ]; then
    say "would run: $*"
  else
    "$@"
  fi
}

have() { command -v "$1" >/dev/null 2>&1; }

# have_postgres prints how the postgres need is met, or fails.
have_postgres() {
  local v dir
  for v in $url_vars; do
    if [ -n "${!v:-}" ]; then echo "a server named by $v"; return 0; fi
  done
  if have initdb && have pg_ctl; then echo "initdb and pg_ctl on PATH"; return 0; fi
  for dir in $pg_glob; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "initdb and pg_ctl in $dir"; return 0; fi
  done
  if [ -S "$docker_sock" ]; then echo "a Docker socket at $docker_sock (a container)"; return 0; fi
  return 1
}

# package NEED: the Debian package that brings it.
package() {
  case $1 in
    postgres) echo postgresql ;;
    chromium) echo chromium ;;
    promtool) echo prometheus ;;
  esac
}

[ $# -gt 0 ] || { echo "usage: $0 postgres|chromium|promtool ..." >&2; exit 2; }
missing=()
for need in "$@"; do
  case $need in
    postgres)
      if how=$(have_postgres); then say "postgres: found $how"; else missing+=(postgres); fi ;;
    chromium | promtool)
      if have "$need"; then say "$need: found $(command -v "$need")"; else missing+=("$need"); fi ;;
    *)
      echo "ensure-deps: unknown need '$need' (postgres, chromium, promtool)" >&2; exit 2 ;;
  esac
done

postgres_user() {
  if [ -n "${ENSURE_DEPS_HAVE_USER:-}" ]; then [ "$ENSURE_DEPS_HAVE_USER" = 1 ]; return; fi
  id postgres >/dev/null 2>&1
}

if [ ${#missing[@]} -gt 0 ]; then
  plain=() norecommends=()
  for need in "${missing[@]}"; do
    # prometheus recommends prometheus-node-exporter, a daemon nothing here needs.
    if [ "$need" = promtool ]; then norecommends+=("$(package "$need")"); else plain+=("$(package "$need")"); fi
  done
  if [ "$uid" = 0 ] && have apt-get; then
    say "installing ${missing[*]}: apt-get install ${plain[*]:-} ${norecommends[*]:-}"
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update -q
    if [ ${#plain[@]} -gt 0 ]; then run apt-get install -y -q "${plain[@]}"; fi
    if [ ${#norecommends[@]} -gt 0 ]; then run apt-get install -y -q --no-install-recommends "${norecommends[@]}"; fi
  else
    if have apt-get; then
      cmd="sudo apt-get install -y ${plain[*]:-} ${norecommends[*]:-}"
    elif have brew; then
      cmd="brew install"
      for need in "${missing[@]}"; do
        case $need in
          postgres) cmd+=" postgresql@17" ;;
          chromium) cmd+=" --cask chromium" ;;
          promtool) cmd+=" prometheus" ;;
        esac
      done
    else
      cmd="install ${missing[*]} with your package manager (Debian: apt-get install -y ${plain[*]:-} ${norecommends[*]:-})"
    fi
    say "missing: ${missing[*]}. Run:"
    echo "  ${cmd%% }"
    if [[ " ${missing[*]} " == *" postgres "* ]]; then
      say "or point TASKER_DATABASE_URL (the demo) or TASKER_TEST_DATABASE_URL (the tests) at a server"
    fi
    exit 1
  fi
fi

# The throwaway clusters run as the postgres user when started as root (PostgreSQL refuses
# root). Debian's package creates it; a server installed another way may not have.
if [[ " $* " == *" postgres "* ]] && [ "$uid" = 0 ] && ! postgres_user; then
  say "creating the postgres system user"
  run useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi
