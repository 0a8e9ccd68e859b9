#pragma once
// The orchestrator's end of the dial-in fabric. Sites connect out to it over mutual PQ-TLS
// (net/rpc.h) and collect their work with a long poll (POST /rpc/Poll, proto/gng.proto: SiteReport
// → PollReply); each answer comes back as POST /rpc/Result. Nothing connects in to a site, so a
// site behind a firewall or NAT needs no open port: the paper's geographically distributed nodes,
// in the shape of Flower's SuperNode pulling from its SuperLink.
//
// The hub keeps the roster: every site that has called, with its certificate's fingerprint, what
// it reports of its data, when it was first and last seen, and its state. A site is `up` while it
// polls; one silent for `lost_after`, or back with a new incarnation (a restarted process), is
// `lost`, and the calls waiting on it fail with net::Unreachable at once. A job collected but
// never answered because its poll's reply did not arrive is handed out again at the next poll.
//
// A site's certificate is checked again (secure::TrustStore follows the deny list on disk) on every
// request it makes and before every call to it: one revoked since it joined is refused at once.
//
// A request is built when its site collects it (`build` gets the session it travels over), so an
// envelope inside it is sealed for that session; an answer names the session it came back over.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/address.h"
#include "net/rpc.h"

namespace gng::node {

// What the roster knows of one site.
struct SiteInfo {
  std::string id, fingerprint;       // certificate CN; SHA-256 of its DER, hex
  std::string address;               // where it connected from
  std::string incarnation;           // its process's random name
  std::size_t train_samples = 0, validation_samples = 0;
  std::vector<std::size_t> label_counts, input_shape;
  int classes = 0, busy = 0;
  std::string qkd;                   // the site's own word: required | optional | off
  double first_seen = 0, last_seen = 0;  // seconds since the epoch
  std::string state;                 // up | lost | refused
  std::string why;                   // what refused or lost it
};

class Hub {
 public:
  struct Options {
    Address listen{"127.0.0.1", 0};
    std::chrono::milliseconds hold{10000};        // a poll with no work waits this long
    std::chrono::milliseconds lost_after{30000};  // a site silent this long is lost
  };
  // Decides whether a site may join (its first report, and each new incarnation): "" admits it,
  // anything else refuses it with that message (403), audited by the caller's on_change.
  using Admit = std::function<std::string(const SiteInfo&)>;
  using Changed = std::function<void(const SiteInfo&)>;

  Hub(const secure::Identity& me, const secure::TrustStore& trust, Options options);
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Set before start(): who may join, and who hears of each change of a site's state (joined,
  // lost, refused, back) and of its last_seen at most every few seconds. Called from server threads.
  void admit(Admit a) { admit_ = std::move(a); }
  void on_change(Changed c) { changed_ = std::move(c); }
  int start();  // listens; returns the port
  void stop();  // fails every waiting call
  // The run is over: every poll from now on is answered with `why` and no work (a site started to
  // serve one run leaves on it). Waits up to `within` for each site up to hear it.
  void end(const std::string& why, std::chrono::milliseconds within);
  // The run's latest signed audit head (JSON), sent with a poll answer to each site that has not
  // kept it yet (its report names the digest of the one it kept): each site keeps it in its own
  // trail, where truncating the run's log cannot remove it.
  void witness(std::string head);

  // Marks a site lost now (e.g. its process is known to have ended): its waiting calls fail.
  void drop(const std::string& id, const std::string& why);
  // Marks a site refused now (its certificate denied since it joined, say): its waiting calls fail
  // and it is refused until it comes back as a new process that is admitted again.
  void refuse(const std::string& id, const std::string& why);

  std::vector<SiteInfo> roster() const;
  bool up(const std::string& id) const;
  // The site's latest report; throws gng::Error for a site that never joined.
  SiteInfo site(const std::string& id) const;
  // Waits until `count` sites are up, or the deadline; returns the ids up by then.
  std::vector<std::string> wait_for(std::size_t count, std::chrono::milliseconds within) const;

  struct Answer {
    std::string body;
    net::Peer session;  // the session the answer came over
  };
  // Job `rpc` on site `id`: `build` makes its request when the site collects it. Throws
  // net::Unreachable when the site is not up or is lost before it answers, gng::Error with the
  // site's message when it refuses, or with build's when build throws.
  Answer call(const std::string& id, const std::string& rpc, std::function<std::string(const net::Peer&)> build);

 private:
  struct Job;
  struct Site;
  std::string poll(const net::Peer& peer, const std::string& from, const std::string& body);
  std::string result(const net::Peer& peer, const std::string& body);
  // With mu_ held: the site is `state` (lost or refused) for `why`, and the calls waiting on it fail.
  void lose(Site& s, const std::string& why, const char* state = "lost");
  void tell(const SiteInfo& info);             // changed_, without mu_

  secure::Identity me_;
  secure::TrustStore trust_;
  Options options_;
  Admit admit_;
  Changed changed_;
  std::unique_ptr<net::Server> server_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::map<std::string, std::unique_ptr<Site>> sites_;
  uint64_t next_job_ = 0;
  bool stopped_ = false;
  std::string ended_;
  std::string audit_head_, audit_head_sha256_;  // the latest head, and its digest (hex)
};

}  // namespace gng::node
