#include "node/hub.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "secure/crypto.h"
#include "gng.pb.h"

namespace gng::node {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// last_seen reaches on_change at most this often while nothing else changes.
constexpr double kSeenEvery = 5.0;

}  // namespace

struct Hub::Job {
  uint64_t id = 0;
  std::string rpc;
  std::function<std::string(const net::Peer&)> build;
  bool collected = false;  // handed to a poll
  bool building = false;   // build() runs on a poll's thread: the caller's frame must outlive it
  uint64_t collected_at = 0;  // that poll's number
  bool done = false, unreachable = false;
  int status = 0;
  std::string body, message;
  net::Peer session;
};

struct Hub::Site {
  SiteInfo info;
  secure::Certificate certificate;         // the one its last poll came with
  std::vector<std::shared_ptr<Job>> jobs;  // queued or collected, not yet answered
  uint64_t polls = 0;                      // polls seen: a newer one ends an older one's wait
  double told = 0;                         // when on_change last heard of it
  bool heard_end = false;                  // a poll reply told it the run ended
  std::chrono::steady_clock::time_point seen;
};

Hub::Hub(const secure::Identity& me, const secure::TrustStore& trust, Options options)
    : me_(me), trust_(trust), options_(options) {}

Hub::~Hub() { stop(); }

int Hub::start() {
  net::Limits limits;
  // A poll holds its connection (and a server thread) for up to `hold`; a site keeps two
  // connections, one polling and one answering: 512 connections (the default) are 256 sites.
  limits.nodelay = true;  // a job and its answer are small messages: measured 407 → 15 ms per node and round
  limits.timeout = options_.hold + std::chrono::seconds(20);
  server_ = std::make_unique<net::Server>(me_, trust_, limits);
  server_->on_refusal([this](const net::Peer& p, const std::string& why) { refuse(p.id, why); });
  server_->route("POST", "/rpc/Poll", [this](const net::Peer& p, const net::Request& r) {
    return net::Response{200, poll(p, r.remote, r.body), "application/x-protobuf"};
  });
  server_->rpc("Result", [this](const net::Peer& p, const std::string& body) { return result(p, body); });
  return server_->listen(options_.listen.host, options_.listen.port);
}

void Hub::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    for (auto& [id, s] : sites_)
      for (auto& j : s->jobs) j->unreachable = true, j->message = "the orchestrator's hub stopped";
  }
  cv_.notify_all();
  if (server_) server_->stop();
}

void Hub::witness(std::string head) {
  const std::string digest = secure::hex(secure::sha256(secure::view(head)));
  std::lock_guard lock(mu_);
  audit_head_ = std::move(head);
  audit_head_sha256_ = digest;
}

void Hub::end(const std::string& why, std::chrono::milliseconds within) {
  std::unique_lock lock(mu_);
  ended_ = why.empty() ? "finished" : why;
  cv_.notify_all();
  cv_.wait_for(lock, within, [&] {
    return stopped_ || std::all_of(sites_.begin(), sites_.end(), [](const auto& s) { return s.second->info.state != "up" || s.second->heard_end; });
  });
}

void Hub::tell(const SiteInfo& info) {
  if (changed_) changed_(info);
}

void Hub::lose(Site& s, const std::string& why, const char* state) {
  s.info.state = state;
  s.info.why = why;
  for (auto& j : s.jobs) {
    j->unreachable = true;
    j->message = why;
  }
  s.jobs.clear();
  cv_.notify_all();
}

std::string Hub::poll(const net::Peer& peer, const std::string& from, const std::string& body) {
  if (peer.role != "node") throw net::Failure(403, "'" + peer.id + "' (" + peer.role + ") is not a node");
  rpc::SiteReport report;
  if (!report.ParseFromString(body)) throw net::Failure(400, "Poll: not a SiteReport message");
  const auto& h = report.health();
  if (h.id() != peer.id)
    throw net::Failure(403, "the site's report names '" + h.id() + "' but its certificate names '" + peer.id + "'");
  if (report.incarnation().empty() || report.incarnation().size() > 64) throw net::Failure(400, "Poll: no incarnation");
  SiteInfo info;
  info.id = peer.id;
  info.fingerprint = peer.fingerprint;
  info.address = from;
  info.incarnation = report.incarnation();
  info.train_samples = h.train_samples();
  info.validation_samples = h.validation_samples();
  for (auto n : h.label_counts()) info.label_counts.push_back(n);
  for (auto n : h.input_shape()) info.input_shape.push_back(n);
  info.classes = static_cast<int>(h.classes());
  info.busy = static_cast<int>(h.busy());
  info.qkd = h.qkd();
  const double now = now_s();

  std::unique_lock lock(mu_);
  if (stopped_) throw net::Failure(503, "the orchestrator is stopping");
  auto& slot = sites_[peer.id];
  const bool fresh = !slot || slot->info.incarnation != info.incarnation;
  if (!fresh && slot->info.state == "refused") {  // until it comes back as a new process
    slot->info.last_seen = now;
    throw net::Failure(403, slot->info.why);
  }
  if (fresh) {
    if (!slot) slot = std::make_unique<Site>();
    info.first_seen = slot->info.first_seen ? slot->info.first_seen : now;
    if (slot->info.state == "up") lose(*slot, "'" + peer.id + "' restarted: what it held is lost");
    // Admission outside the lock (the caller may read its registry); the site waits for it.
    lock.unlock();
    const std::string refused = admit_ ? admit_(info) : std::string();
    lock.lock();
    if (!refused.empty()) {
      info.state = "refused";
      info.why = refused;
      info.last_seen = now;
      slot->info = info;
      lock.unlock();
      tell(info);
      throw net::Failure(403, refused);
    }
  }
  Site& s = *slot;
  info.first_seen = s.info.first_seen ? s.info.first_seen : now;
  info.state = "up";  // admitted, back from lost, or still up
  info.last_seen = now;
  const bool changed = fresh || s.info.state != "up";
  s.info = info;
  s.certificate = peer.certificate;
  s.seen = std::chrono::steady_clock::now();
  const uint64_t me = ++s.polls;
  if (report.leaving()) {
    lose(s, "'" + peer.id + "' left");
    const SiteInfo copy = s.info;
    lock.unlock();
    tell(copy);
    return rpc::PollReply().SerializeAsString();
  }
  // A job collected by an earlier poll that the site does not hold never reached it: hand it out again.
  const std::set<uint64_t> held(report.in_hand().begin(), report.in_hand().end());
  for (auto& j : s.jobs)
    if (j->collected && j->collected_at < me && !held.count(j->id)) j->collected = false;
  const bool tell_now = changed || now - s.told >= kSeenEvery;
  if (tell_now) s.told = now;
  cv_.notify_all();  // waiting calls see the site up; an older poll of this site ends
  if (tell_now) {
    const SiteInfo copy = s.info;
    lock.unlock();
    tell(copy);
    lock.lock();
  }

  // Wait for work, until the hold time, a newer poll of this site, the run's end, or the hub stops.
  const auto has_work = [&] {
    return std::any_of(s.jobs.begin(), s.jobs.end(), [](const auto& j) { return !j->collected; });
  };
  cv_.wait_for(lock, options_.hold, [&] { return stopped_ || s.polls != me || has_work() || !ended_.empty(); });
  if (!ended_.empty() && s.polls == me) {
    s.heard_end = true;
    cv_.notify_all();
    rpc::PollReply over;
    over.set_ended(ended_);
    if (report.audit_head_kept() != audit_head_sha256_) over.set_audit_head(audit_head_);
    return over.SerializeAsString();
  }
  std::vector<std::shared_ptr<Job>> take;
  if (!stopped_ && s.polls == me)
    for (auto& j : s.jobs)
      if (!j->collected) {
        j->collected = true;
        j->collected_at = me;
        j->building = true;
        take.push_back(j);
      }
  rpc::PollReply reply;
  if (report.audit_head_kept() != audit_head_sha256_) reply.set_audit_head(audit_head_);
  lock.unlock();

  for (auto& j : take) {
    std::string request, failed;
    bool built = true;
    try {
      request = j->build(peer);  // sealed for this session, if it seals
    } catch (const std::exception& e) {
      built = false;
      failed = e.what();
    }
    {
      std::lock_guard relock(mu_);
      j->building = false;
      if (!built && !j->unreachable) {
        j->done = true;
        j->status = 0;
        j->message = failed;
        std::erase(s.jobs, j);
      }
      cv_.notify_all();
    }
    if (!built) continue;
    rpc::Work* w = reply.add_work();
    w->set_id(j->id);
    w->set_rpc(j->rpc);
    w->set_body(std::move(request));
  }
  return reply.SerializeAsString();
}

std::string Hub::result(const net::Peer& peer, const std::string& body) {
  rpc::Result r;
  if (!r.ParseFromString(body)) throw net::Failure(400, "Result: not a Result message");
  std::lock_guard lock(mu_);
  auto it = sites_.find(peer.id);
  if (it == sites_.end() || it->second->info.incarnation != r.incarnation())
    throw net::Failure(409, "'" + peer.id + "' answers for a session of it the orchestrator does not know");
  Site& s = *it->second;
  const auto j = std::find_if(s.jobs.begin(), s.jobs.end(), [&](const auto& x) { return x->id == r.id() && x->collected; });
  if (j == s.jobs.end())
    throw net::Failure(409, "'" + peer.id + "' answers job " + std::to_string(r.id()) + ", which is not waiting for it");
  (*j)->done = true;
  (*j)->status = static_cast<int>(r.status());
  (*j)->body = r.body();
  (*j)->message = r.message();
  (*j)->session = peer;
  s.jobs.erase(j);
  s.seen = std::chrono::steady_clock::now();
  cv_.notify_all();
  return rpc::ResultReply().SerializeAsString();
}

Hub::Answer Hub::call(const std::string& id, const std::string& rpc_name, std::function<std::string(const net::Peer&)> build) {
  auto job = std::make_shared<Job>();
  job->rpc = rpc_name;
  job->build = std::move(build);
  std::unique_lock lock(mu_);
  const auto it = sites_.find(id);
  if (stopped_ || it == sites_.end() || it->second->info.state != "up")
    throw net::Unreachable("site '" + id + "' is not connected" +
                           (it != sites_.end() && !it->second->info.why.empty() ? " (" + it->second->info.why + ")" : ""));
  Site& s = *it->second;
  if (s.certificate) {
    std::string denied;
    try {
      trust_.check(s.certificate);
    } catch (const Error& e) {
      denied = e.what();
    }
    if (!denied.empty()) {
      lock.unlock();
      refuse(id, denied);
      throw net::Unreachable("site '" + id + "' is refused: " + denied);
    }
  }
  job->id = ++next_job_;
  s.jobs.push_back(job);
  cv_.notify_all();
  // Wake at least every second to notice a site gone silent.
  while ((!job->done && !job->unreachable) || job->building) {
    cv_.wait_for(lock, std::chrono::seconds(1));
    if (!job->done && !job->unreachable && s.info.state == "up" &&
        std::chrono::steady_clock::now() - s.seen > options_.lost_after) {
      lose(s, "'" + id + "' has not called for " + std::to_string(options_.lost_after.count() / 1000) + " s");
      const SiteInfo copy = s.info;
      lock.unlock();
      tell(copy);
      lock.lock();
    }
  }
  if (job->unreachable) throw net::Unreachable("site '" + id + "': " + job->message);
  if (job->status == 0) throw Error(job->message);  // build failed: nothing was sent
  if (job->status != 200)
    throw Error("'" + id + "' refused " + rpc_name + " (HTTP " + std::to_string(job->status) + "): " + job->message);
  return {std::move(job->body), std::move(job->session)};
}

void Hub::drop(const std::string& id, const std::string& why) {
  SiteInfo copy;
  {
    std::lock_guard lock(mu_);
    const auto it = sites_.find(id);
    if (it == sites_.end() || it->second->info.state != "up") return;
    lose(*it->second, why);
    copy = it->second->info;
  }
  tell(copy);
}

void Hub::refuse(const std::string& id, const std::string& why) {
  SiteInfo copy;
  {
    std::lock_guard lock(mu_);
    const auto it = sites_.find(id);
    if (it == sites_.end() || it->second->info.state == "refused") return;
    lose(*it->second, why, "refused");
    copy = it->second->info;
  }
  tell(copy);
}

std::vector<SiteInfo> Hub::roster() const {
  std::lock_guard lock(mu_);
  std::vector<SiteInfo> out;
  for (const auto& [id, s] : sites_) out.push_back(s->info);
  return out;
}

bool Hub::up(const std::string& id) const {
  std::lock_guard lock(mu_);
  const auto it = sites_.find(id);
  return it != sites_.end() && it->second->info.state == "up" &&
         std::chrono::steady_clock::now() - it->second->seen <= options_.lost_after;
}

SiteInfo Hub::site(const std::string& id) const {
  std::lock_guard lock(mu_);
  const auto it = sites_.find(id);
  if (it == sites_.end()) throw Error("no site '" + id + "' has joined");
  return it->second->info;
}

std::vector<std::string> Hub::wait_for(std::size_t count, std::chrono::milliseconds within) const {
  std::unique_lock lock(mu_);
  const auto ups = [&] {
    std::vector<std::string> out;
    for (const auto& [id, s] : sites_)
      if (s->info.state == "up") out.push_back(id);
    return out;
  };
  cv_.wait_for(lock, within, [&] { return stopped_ || ups().size() >= count; });
  return ups();
}

}  // namespace gng::node
