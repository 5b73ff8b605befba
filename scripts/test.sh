#!/usr/bin/env bash
# The test command: install what is missing, build the executable, type-check,
# run every test (unit and real-namespace integration). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm run --silent build
npm run --silent typecheck
npx vitest run "$@"
