#!/usr/bin/env bash
# Install everything the benchmarks need, then build the data set. Idempotent.
#   bash bench/setup.sh            # apt packages, venvs, data set
#   bash bench/setup.sh --no-data  # skip dataset.py
# Venvs live under bench/work/venvs (git-ignored), one per server so that none
# pollutes another or the system:
#   pypiserver  pypiserver + gunicorn + watchdog (its cached-dir backend)
#   devpi       devpi-server + devpi-client (to create the mirror index)
#   proxpi      proxpi + gunicorn
#   mirror      this repo, editable (`qmirror`), + py-spy and pyinstrument for profiling
#   client      the newest pip, for the resolve benchmark
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
venvs="$here/work/venvs"
py="${PYTHON:-python3}"

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || need_apt+=(nginx-light)
command -v curl >/dev/null || need_apt+=(curl)
[ -x /usr/bin/time ] || need_apt+=(time)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need_apt[@]}"
fi
# The Debian package may start a system nginx on port 80; the benchmarks never use it.

mkdir -p "$venvs"
mkvenv() {  # name packages...
    local name="$1"; shift
    [ -x "$venvs/$name/bin/python" ] || "$py" -m venv "$venvs/$name"
    "$venvs/$name/bin/python" -m pip install -q --disable-pip-version-check "$@"
}
mkvenv pypiserver pypiserver gunicorn watchdog passlib
mkvenv devpi devpi-server devpi-client
mkvenv proxpi proxpi gunicorn
mkvenv ceiling gunicorn gevent packaging  # ceiling-gevent (ceiling_app.py)
mkvenv mirror -e "$repo" py-spy pyinstrument gevent  # gevent: diagnostics only (mirror-gevent)
mkvenv client -U pip

for v in pypiserver devpi proxpi mirror client; do
    printf '%-11s %s\n' "$v" "$("$venvs/$v/bin/python" -m pip list 2>/dev/null \
        | grep -iE '^(pypiserver|devpi-server|proxpi|quarantine-mirror|pip|gunicorn) ' \
        | awk '{printf "%s %s  ", $1, $2}')"
done

if [ "${1:-}" != "--no-data" ]; then
    "$venvs/mirror/bin/python" "$here/dataset.py" >/dev/null
fi
echo "ready: see bench/README.md"
