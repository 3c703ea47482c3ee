#!/usr/bin/env bash
# physadv set-up in one step, then a job:
#   ./setup.sh test [pytest args]   set up .venv (if needed) and run the test suite
#   ./setup.sh demo [args]          set up .venv (if needed) and run `physadv demo` (the main job)
#   ./setup.sh run ARGS...          set up .venv (if needed) and run `physadv ARGS...`
# The install uses uv in a project-local virtual environment, so pip's local configuration
# (find-links, extra index URLs, a pinned local torch wheel) cannot leak into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
venv="${PHYSADV_VENV:-.venv}"
stamp="$venv/.physadv-installed"

if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "physadv: setting up $venv (one time; torch and ultralytics are large)" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --isolated --quiet --disable-pip-version-check uv
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -e ".[test]"
  touch "$stamp"
fi

job="${1:-}"
[ $# -gt 0 ] && shift
case "$job" in
  test) exec "$venv/bin/python" -m pytest "$@" ;;
  demo) exec "$venv/bin/physadv" demo "$@" ;;
  run)  exec "$venv/bin/physadv" "$@" ;;
  "")   echo "physadv is set up in $venv; activate it with: source $venv/bin/activate" >&2 ;;
  *)    echo "usage: ./setup.sh demo|test|run [args]" >&2; exit 2 ;;
esac
