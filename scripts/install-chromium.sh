#!/usr/bin/env bash
# install-chromium.sh installs Debian's headless-capable Chromium for the
# browser tests of the web UI (http/ui/uitest). It is idempotent: when a
# chromium binary is already on PATH (or STEWARD_CHROMIUM points to one) it
# does nothing. Needs root (apt-get).
set -euo pipefail

if [[ -n "${STEWARD_CHROMIUM:-}" && -x "${STEWARD_CHROMIUM}" ]]; then
	echo "chromium: using STEWARD_CHROMIUM=${STEWARD_CHROMIUM}"
	exit 0
fi
for b in chromium chromium-browser; do
	if command -v "$b" >/dev/null 2>&1; then
		echo "chromium: already installed at $(command -v "$b")"
		exit 0
	fi
done

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [[ "$(id -u)" != 0 ]]; then
	SUDO="sudo"
fi
$SUDO apt-get update -qq
# fonts-liberation gives screenshots readable text; chromium pulls the rest.
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
echo "chromium: installed $(command -v chromium)"
