#!/bin/sh
# The orchestrator's container command (installed in the image as gng-orchestrator):
#
#   gng-orchestrator RUN_FILE RUNS_DIR [--hold]
#
# Starts the run in RUN_FILE under RUNS_DIR; when RUNS_DIR already holds a run that has not ended
# (the container was restarted after a crash, a kill or a reschedule) it resumes that one instead,
# and the sites, still running, dial in again by themselves. A run that has ended (finished, or
# stopped by its budget) is not started again. With --hold the container then stays up, so that a
# Kubernetes Deployment does not restart it and `gng status` / `gng nodes` can be run in it;
# without, it exits with the run's status.
set -eu

usage="usage: gng-orchestrator RUN_FILE RUNS_DIR [--hold]"
run_file=${1:?$usage}
runs=${2:?$usage}
hold=${3:-}
[ -z "$hold" ] || [ "$hold" = --hold ] || { echo "$usage" >&2; exit 2; }
[ -f "$run_file" ] || { echo "gng-orchestrator: no run file $run_file" >&2; exit 2; }
mkdir -p "$runs"

# gng in the background, so that this shell (PID 1 in a container) passes SIGTERM on to it.
gng_() {
  gng "$@" &
  child=$!
  trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
  while :; do
    if wait "$child"; then status=0; else status=$?; fi
    kill -0 "$child" 2>/dev/null || break  # else wait was cut short by a signal: wait again
  done
  trap - TERM INT
  return "$status"
}

hold_() {
  echo "gng-orchestrator: holding (gng status $1; gng nodes $1)"
  trap 'exit 0' TERM INT
  while :; do sleep 3600 & wait $! || true; done
}

# Run folders are NAME-UTCSTAMP[-K]: the last in sort order is the newest.
last=$(find "$runs" -mindepth 1 -maxdepth 1 -type d | sort | tail -n 1)
state=""
if [ -n "$last" ]; then
  state=$(gng status "$last" 2>/dev/null | sed -n '1s/^gng run [^:]*: //p' || true)
fi
status=0
case "$state" in
  finished | stopped*)
    echo "gng-orchestrator: $last has ended ($state); not starting another" ;;
  *)
    if [ -n "$last" ]; then
      echo "gng-orchestrator: resuming $last (${state:-state unknown})"
      gng_ run --resume "$last" || status=$?
    else
      gng_ run "$run_file" --runs "$runs" || status=$?
      last=$(find "$runs" -mindepth 1 -maxdepth 1 -type d | sort | tail -n 1)
    fi ;;
esac
[ "$status" = 0 ] && [ "$hold" = --hold ] && hold_ "$last"
exit "$status"
