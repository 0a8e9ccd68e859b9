# What the grid's shell tests share (sourced): fail, the logs of a failure, free ports.
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
# The last lines of every log in $dir (and of the files named), for a failure's message.
show_logs() { for f in "$dir"/*.log "$@"; do [ -f "$f" ] && { echo "--- $f"; tail -40 "$f"; }; done; }
# A TCP port nothing listens on at 127.0.0.1 now.
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  fail "no free port"
}
