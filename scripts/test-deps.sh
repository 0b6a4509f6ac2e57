# Sourced by scripts/test: installs the real MCP servers the integration tests talk to into .test-deps/
# (ignored by git) and exports where they are. Versions are pinned; a second run reuses what is there.
set -euo pipefail
DEPS="$(pwd)/.test-deps"
mkdir -p "$DEPS"
export TOOLWARDEN_TEST_DEPS="$DEPS"
