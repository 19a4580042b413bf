#!/usr/bin/env bash
# Set up (first run only) and start the app: API + UI, migrated SQLite database, shipped weights.
# Extra arguments go to `digits up`. Ctrl-C stops both.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/setup.sh
source "$here/setup.sh"
exec "$repo_root/.venv/bin/digits" up "$@"
