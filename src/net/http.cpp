#include "net/http.h"

#include <httplib.h>

#include <sys/socket.h>

#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "core/address.h"
#include "core/error.h"

namespace gng::net {

namespace {

using Clock = std::chrono::steady_clock;

// Each connection runs on its own thread; these describe the request being read on it. `since`: the
// last thing that happened on the connection (accepted, or a response written); `routed`: the
// current request's headers were read (the pre-routing hook ran), at `started`.
thread_local Clock::time_point since;
thread_local Clock::time_point started;
thread_local bool routed = false;
// Why the guard itself answered the current request with an error ("" when it did not).
thread_local std::string why;

// A thread per connection, at most `max` at once: enqueue (on httplib's accept loop) waits for room,
// so that beyond the limit new connections stay in the kernel's backlog.
class ConnectionThreads : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(std::size_t max) : max_(max) {}
  void enqueue(std::function<void()> fn) override {
    std::unique_lock lock(m_);
    room_.wait(lock, [&] { return open_ < max_; });
    ++open_;
    std::thread([this, fn = std::move(fn)] {
      since = Clock::now();
      routed = false;
      fn();
      std::lock_guard done(m_);
      --open_;
      room_.notify_all();
    }).detach();
  }
  void shutdown() override {
    std::unique_lock lock(m_);
    room_.wait(lock, [&] { return open_ == 0; });
  }

 private:
  const std::size_t max_;
  std::mutex m_;
  std::condition_variable room_;
  std::size_t open_ = 0;
};

bool all_digits(const std::string& s) {
  if (s.empty() || s.size() > 19) return false;  // 19 digits: below 2^63
  for (const char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

void guard(httplib::Server& http, const HttpLimits& limits, HttpHooks hooks) {
  if (limits.connections < 1) throw std::invalid_argument("HttpLimits: connections must be at least 1");
  if (limits.read <= limits.idle) throw std::invalid_argument("HttpLimits: read must be longer than idle");
  http.new_task_queue = [n = limits.connections] { return new ConnectionThreads(n); };
  http.set_keep_alive_timeout(limits.idle.count());
  http.set_read_timeout(limits.read.count());
  http.set_write_timeout(limits.write.count());
  http.set_payload_max_length(limits.max_body);

  http.set_pre_routing_handler(
      [before = hooks.before](const httplib::Request& req, httplib::Response& res) {
        started = Clock::now();
        routed = true;
        why.clear();
        if (before) before(req);
        // httplib reads a Content-Length with strtoull (so "abc" is 0 and "-1" is 2^64 − 1) and then
        // waits for that many bytes (or takes a body as the next request): check it before the body
        // is read. (A valid length above max_body is httplib's: it reads and drops the body, then
        // answers 413, so that the client, still sending, reads the answer instead of a reset.)
        const std::size_t n = req.get_header_value_count("Content-Length");
        if (n == 0) return httplib::Server::HandlerResponse::Unhandled;
        const std::string first = req.get_header_value("Content-Length");
        bool ok = all_digits(first);
        for (std::size_t i = 1; ok && i < n; ++i) ok = req.get_header_value("Content-Length", i) == first;
        if (ok) return httplib::Server::HandlerResponse::Unhandled;
        why = "Content-Length must be one decimal number of bytes, got '" + first.substr(0, 40) + "'" +
              (n > 1 ? " and " + std::to_string(n - 1) + " more" : "");
        res.status = 400;
        res.set_header("Connection", "close");
        return httplib::Server::HandlerResponse::Handled;
      });

  // httplib answers 400 both to a malformed request and to one whose bytes stopped coming (its
  // reads time out). The two differ in time: a stalled request took at least `read` since its
  // headers (routed) or since the connection's last event, which for a malformed one is at most
  // `idle` (the wait for it) plus the time to parse it.
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [read = limits.read, describe = hooks.describe](const httplib::Request& req, httplib::Response& res) {
        if (res.status == 400 && res.body.empty()) {
          const auto from = routed ? started : since;
          if (Clock::now() - from >= read - std::chrono::milliseconds(250)) {
            res.status = 408;
            why = "request timed out: its bytes stopped coming for " + std::to_string(read.count()) + " s";
            res.set_header("Connection", "close");
          }
        }
        if (res.body.empty() && describe) describe(req, res, why);
        return res.body.empty() ? httplib::Server::HandlerResponse::Unhandled : httplib::Server::HandlerResponse::Handled;
      }));

  http.set_post_routing_handler([after = hooks.after](const httplib::Request& req, httplib::Response& res) {
    if (after) after(req, res);
    since = Clock::now();
    routed = false;
    why.clear();
  });
}

int bind_port(httplib::Server& http, const std::string& host, int port, int backlog) {
  // httplib listens with a backlog of 5; listen() again on the bound socket raises it. SO_REUSEADDR
  // (a quick restart reuses the port) but not httplib's default SO_REUSEPORT, with which a second
  // server would silently share the port instead of failing to bind.
  auto sock = std::make_shared<int>(-1);
  http.set_socket_options([sock](socket_t s) {
    const int yes = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    *sock = s;
  });
  int bound = port;
  if (port == 0)
    bound = http.bind_to_any_port(host);
  else if (port < 0 || port > 65535 || !http.bind_to_port(host, port))
    bound = -1;
  if (bound <= 0) throw Error("cannot listen on " + Address{host, port}.text() + " (in use, or not an address here)");
  if (*sock >= 0 && ::listen(*sock, backlog) != 0)
    throw Error("cannot listen on " + Address{host, bound}.text() + ": " + std::strerror(errno));
  return bound;
}

}  // namespace gng::net
