#pragma once
// What every gng HTTP server shares, on cpp-httplib: the inference endpoint (serve/) and the PQ-TLS
// servers (rpc.h: the hub, the KME, the enrolment service).
//
//  - A thread per open connection, up to `connections` at once (beyond, new ones wait in the kernel's
//    listen backlog). An idle or slow connection costs one sleeping thread; it never holds one of a
//    fixed pool's workers, so 200 clients that send nothing leave real requests served (the compute
//    they may use is bounded by the server itself: serve's compute slots, the hub's jobs).
//  - A kept-alive connection that sends no next request within `idle` is closed.
//  - A request whose bytes stop coming for `read` (headers or body) is answered 408, Connection: close.
//  - Content-Length is checked before any body is read: not a decimal number below 10^19, or given
//    twice with different values: 400 at once, with Connection: close (above `max_body`: 413).
//  - Listen backlog `backlog` (cpp-httplib's own is 5).
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace gng::net {

struct HttpLimits {
  std::size_t connections = 512;      // open connections served at once, each on its own thread
  std::chrono::seconds idle{5};       // a kept-alive connection's wait for its next request
  std::chrono::seconds read{10};      // the longest pause inside a request before 408; > idle
  std::chrono::seconds write{10};     // the longest a client may take to accept an answer
  std::size_t max_body = 1u << 20;    // request bodies above this: 413
  int backlog = 1024;                 // connections the kernel holds before accept
};

struct HttpHooks {
  // As each request's headers have been read, before its body is.
  std::function<void(const httplib::Request&)> before;
  // Every response just before it is written (errors included).
  std::function<void(const httplib::Request&, const httplib::Response&)> after;
  // Fills the body of an error that no handler answered (res.status set: 400, 404, 408, 413 …);
  // `why`: the guard's reason where it answered itself (408, a bad Content-Length), else "".
  std::function<void(const httplib::Request&, httplib::Response&, const std::string& why)> describe;
};

// Applies the limits to a server not yet bound. Throws std::invalid_argument on limits that make no
// sense (no connections, read <= idle).
void guard(httplib::Server& http, const HttpLimits& limits, HttpHooks hooks = {});

// Binds host:port (0: any free port) with the guard's backlog and returns the port; throws gng::Error
// naming the address when it cannot.
int bind_port(httplib::Server& http, const std::string& host, int port, int backlog);

}  // namespace gng::net
