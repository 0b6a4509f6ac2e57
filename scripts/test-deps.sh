# Sourced by scripts/test: installs the real MCP servers the integration tests talk to into .test-deps/
# (ignored by git) and exports where they are. Versions are pinned; a second run reuses what is there
# (a stamp file records the pinned versions, so changing a pin reinstalls).
set -euo pipefail
DEPS="$(pwd)/.test-deps"
mkdir -p "$DEPS"
export TOOLWARDEN_TEST_DEPS="$DEPS"

NPM_PACKAGES=(
  "@modelcontextprotocol/server-everything@2026.8.31"
  "@modelcontextprotocol/server-filesystem@2026.8.31"
  "@modelcontextprotocol/server-memory@2026.8.31"
)
PYPI_PACKAGES=("mcp-server-time==2026.10.19")

npm_stamp="${NPM_PACKAGES[*]}"
if [ "$(cat "$DEPS/npm.stamp" 2>/dev/null)" != "$npm_stamp" ]; then
  echo "test-deps: installing ${NPM_PACKAGES[*]}" >&2
  mkdir -p "$DEPS/npm"
  (cd "$DEPS/npm" && [ -f package.json ] || echo '{"private":true}' > package.json)
  npm install --prefix "$DEPS/npm" --no-audit --no-fund --loglevel=error "${NPM_PACKAGES[@]}" >&2
  echo "$npm_stamp" > "$DEPS/npm.stamp"
fi

py_stamp="${PYPI_PACKAGES[*]}"
if [ "$(cat "$DEPS/py.stamp" 2>/dev/null)" != "$py_stamp" ]; then
  echo "test-deps: installing ${PYPI_PACKAGES[*]} into a venv" >&2
  python3 -m venv "$DEPS/venv"
  "$DEPS/venv/bin/pip" install --quiet --disable-pip-version-check "${PYPI_PACKAGES[@]}" >&2
  echo "$py_stamp" > "$DEPS/py.stamp"
fi

bin="$DEPS/npm/node_modules/.bin"
export TOOLWARDEN_TEST_EVERYTHING="$bin/mcp-server-everything"
export TOOLWARDEN_TEST_FILESYSTEM="$bin/mcp-server-filesystem"
export TOOLWARDEN_TEST_MEMORY="$bin/mcp-server-memory"
export TOOLWARDEN_TEST_TIME="$DEPS/venv/bin/mcp-server-time"

# redis-server for the shared-state tests (each test starts its own on a free loopback port). CI runs as root
# on a fresh Debian machine; elsewhere sudo is used when needed.
if ! command -v redis-server >/dev/null 2>&1; then
  echo "test-deps: installing redis-server" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >&2
fi
TOOLWARDEN_TEST_REDIS_SERVER="$(command -v redis-server)"
export TOOLWARDEN_TEST_REDIS_SERVER

# bubblewrap for `crawl --sandbox` (the sandbox tests fail, never skip, without it).
if ! command -v bwrap >/dev/null 2>&1; then
  echo "test-deps: installing bubblewrap" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq bubblewrap >&2
fi

# Debian's Chromium and ChromeDriver for the web console's browser tests (tests/integration/console.rs).
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  echo "test-deps: installing chromium and chromium-driver" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >&2
fi
TOOLWARDEN_TEST_CHROMIUM="$(command -v chromium)"
TOOLWARDEN_TEST_CHROMEDRIVER="$(command -v chromedriver)"
export TOOLWARDEN_TEST_CHROMIUM TOOLWARDEN_TEST_CHROMEDRIVER
