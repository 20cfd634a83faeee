# Sourced by the bench scripts: a redis-server of the bench's own on a free loopback port
# (never another server) and the `skewless serve` under test, both stopped on exit.
#   start_redis DIR           redis-server with DIR as its working directory; sets redis_port, redis_url
#   start_server PROJECT LOG  `$bin serve $SERVE_ARGS` in PROJECT against redis_url, stderr to LOG, once it
#                             is ready; sets server_port, server_pid

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

bench_cleanup() {
  [ -n "${server_pid:-}" ] && kill -TERM "$server_pid" 2>/dev/null || true
  [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
}

start_redis() {
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$1" >/dev/null &
  redis_pid=$!
  server_pid=
  trap bench_cleanup EXIT
  for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  redis_url=redis://127.0.0.1:$redis_port
}

start_server() {
  server_port=$(free_port)
  (cd "$1" && exec "$bin" serve --addr "127.0.0.1:$server_port" --online "$redis_url" ${SERVE_ARGS:-} 2>"$2") &
  server_pid=$!
  for _ in $(seq 100); do
    curl -sf "127.0.0.1:$server_port/ready" >/dev/null 2>&1 && break
    sleep 0.05
  done
}
