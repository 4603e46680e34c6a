# Sourced by .ci/run: the two PgBouncers that test/support/postgres-routes.ts runs the suites through.
# Each test file starts its own on a free port; nothing here starts one.

# Debian 13's source package; 1.21 is the first PgBouncer that keeps prepared statements in transaction pooling.
PGBOUNCER_SOURCE_SUITE=trixie

# The newest /opt/pgbouncer-<version>/bin/pgbouncer, if one was built before.
built_pgbouncer() {
  local found=(/opt/pgbouncer-*/bin/pgbouncer)
  [ -x "${found[0]}" ] && printf '%s\n' "${found[@]}" | sort -V | tail -1
  return 0
}

# Whether `$1 --version` is 1.21 or newer.
keeps_prepared_statements() {
  local version
  version="$("$1" --version 2>/dev/null | sed -n 's/^PgBouncer \([0-9.]*\).*/\1/p')"
  [ -n "$version" ] && [ "$(printf '%s\n1.21\n' "$version" | sort -V | head -1)" = 1.21 ]
}

# The machine's own Debian mirror, so that the script names none.
debian_mirror() {
  apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 'Label: Debian' | sort -u | head -1
}

# Builds Debian 13's pgbouncer (its patches applied) into /opt/pgbouncer-<version>, from a private apt
# list of that suite's sources: the machine's own apt sources and pins stay as they are.
build_pgbouncer() {
  local mirror work
  mirror="$(debian_mirror)"
  if [ -z "$mirror" ]; then
    echo "No Debian mirror in the apt sources: cannot fetch pgbouncer's source" >&2
    return 1
  fi
  work="$(mktemp -d)"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $PGBOUNCER_SOURCE_SUITE main" >"$work/sources.list"
  local apt=(apt-get -qq -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
  "${apt[@]}" update
  (cd "$work" && "${apt[@]}" source --download-only pgbouncer >/dev/null)
  # apt checked the files against the suite's signed index; dpkg-source has no keyring of its own to check.
  (cd "$work" && dpkg-source --no-check -x ./pgbouncer_*.dsc src >/dev/null)
  local version
  version="$(sed -n 's/^Version: \([0-9.]*\).*/\1/p' "$work"/pgbouncer_*.dsc)"
  (
    cd "$work/src"
    ./configure --prefix="/opt/pgbouncer-$version" >"$work/configure.log"
    make -j"$(nproc)" >"$work/make.log" 2>&1
    make install >"$work/install.log"
  ) || {
    tail -30 "$work"/*.log >&2
    return 1
  }
  rm -rf "$work"
}

ensure_pgbouncer() {
  local missing=()
  command -v dpkg-source >/dev/null || missing+=(dpkg-dev)
  [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
  local built
  built="$(built_pgbouncer)"
  if [ -z "$built" ] || ! keeps_prepared_statements "$built"; then
    dpkg -s libevent-dev libssl-dev pkg-config >/dev/null 2>&1 || missing+=(libevent-dev libssl-dev pkg-config)
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    log "Installing ${missing[*]}"
    apt-get update -qq
    # Debian's pgbouncer (1.18 on Debian 12) serves the route without prepared statements; its own service stays unused.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ -n "$built" ] && keeps_prepared_statements "$built"; then return; fi
  log "Building PgBouncer from Debian $PGBOUNCER_SOURCE_SUITE's source into /opt"
  build_pgbouncer
  built="$(built_pgbouncer)"
  keeps_prepared_statements "$built" || {
    echo "The PgBouncer built ($built) is older than 1.21" >&2
    return 1
  }
}
