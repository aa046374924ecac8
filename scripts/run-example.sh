#!/usr/bin/env bash
# run-example.sh — build goluarun (installing what is missing) and start the
# echo example server: scripts/run-example.sh [PORT] (default 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "try: nc 127.0.0.1 ${1:-8080}   (Ctrl-C stops the server)"
exec build/goluarun scripts/echo.lua "${1:-8080}"
