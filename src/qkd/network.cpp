#include "qkd/network.h"

#include <condition_variable>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "audit/log.h"
#include "core/error.h"
#include "gng.pb.h"

namespace gng::qkd {

namespace {

using json = nlohmann::json;
using net::Failure;

struct Range {
  uint64_t offset, length;
};

// One share of a link's pool: bytes by their offset in the session's key stream.
class Pool {
 public:
  void add(uint64_t offset, Bytes b) {
    if (b.empty()) return;
    bytes_ += b.size();
    segs_[offset] = std::move(b);
  }
  std::size_t size() const { return bytes_; }
  void clear() {
    segs_.clear();
    bytes_ = 0;
  }
  // The oldest n bytes (size() >= n): where they were, and what.
  std::pair<std::vector<Range>, Bytes> allocate(std::size_t n) {
    std::vector<Range> ranges;
    Bytes out;
    while (out.size() < n) {
      auto it = segs_.begin();
      const std::size_t take = std::min(n - out.size(), it->second.size());
      ranges.push_back({it->first, take});
      out.insert(out.end(), it->second.begin(), it->second.begin() + static_cast<std::ptrdiff_t>(take));
      Bytes rest(it->second.begin() + static_cast<std::ptrdiff_t>(take), it->second.end());
      const uint64_t at = it->first + take;
      segs_.erase(it);
      if (!rest.empty()) segs_[at] = std::move(rest);
      bytes_ -= take;
    }
    return {ranges, out};
  }
  // Exactly these ranges, taken out; nullopt (nothing taken) when any byte is not here.
  std::optional<Bytes> take(const std::vector<Range>& ranges) {
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      if (!holds(ranges[i])) return std::nullopt;
      for (std::size_t j = 0; j < i; ++j)
        if (ranges[j].offset < ranges[i].offset + ranges[i].length && ranges[i].offset < ranges[j].offset + ranges[j].length)
          return std::nullopt;
    }
    Bytes out;
    for (const Range& r : ranges) {
      auto it = std::prev(segs_.upper_bound(r.offset));
      const uint64_t start = it->first;
      Bytes seg = std::move(it->second);
      segs_.erase(it);
      const std::size_t lo = r.offset - start, hi = lo + r.length;
      out.insert(out.end(), seg.begin() + static_cast<std::ptrdiff_t>(lo), seg.begin() + static_cast<std::ptrdiff_t>(hi));
      if (lo > 0) segs_[start] = Bytes(seg.begin(), seg.begin() + static_cast<std::ptrdiff_t>(lo));
      if (hi < seg.size()) segs_[start + hi] = Bytes(seg.begin() + static_cast<std::ptrdiff_t>(hi), seg.end());
      bytes_ -= r.length;
    }
    return out;
  }

 private:
  bool holds(const Range& r) const {
    if (r.length == 0) return false;
    auto it = segs_.upper_bound(r.offset);
    if (it == segs_.begin()) return false;
    --it;
    return r.offset + r.length <= it->first + it->second.size();
  }
  std::map<uint64_t, Bytes> segs_;
  std::size_t bytes_ = 0;
};

Bits bits_of(const std::string& bytes, uint64_t n, const char* what) {
  try {
    return unpack_bits(View(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), n);
  } catch (const Error& e) {
    throw Failure(400, std::string(what) + ": " + e.what());
  }
}

std::string str(const Bytes& b) { return std::string(b.begin(), b.end()); }

template <class M>
M parse(const std::string& body, const char* name) {
  M m;
  if (!m.ParseFromString(body)) throw Failure(400, std::string("malformed ") + name + " message");
  return m;
}

template <class Reply, class M>
Reply call(net::Client& c, const char* name, const M& m) {
  Reply r;
  if (!r.ParseFromString(c.rpc(name, m.SerializeAsString()))) throw Error(std::string("malformed answer to ") + name);
  return r;
}

std::string duration_text(std::chrono::milliseconds d) { return std::to_string(d.count() / 1000.0).substr(0, 4) + " s"; }

}  // namespace

net::Limits site_kme_limits() {
  net::Limits l = kme_limits();
  l.max_body = 4u << 20;
  return l;
}

struct SiteKme::Link {
  LinkPlan plan;
  std::string peer;
  bool alice = false;
  std::optional<uint64_t> seed;
  std::unique_ptr<net::Client> blocks, hops;  // to the peer: Alice's block loop; key hops (one at a time)
  std::mutex hop_mu;

  mutable std::mutex mu;  // what follows
  std::condition_variable cv;
  std::string session;
  uint64_t next_block = 0;  // Alice: the next block's index; Bob: the one expected
  Pool mine, theirs;        // this end's share (it hands these out) and the peer's
  uint64_t stream = 0;      // bytes pooled in this session: the next block's offset
  bool failed = false;  // the session was lost or the last block aborted: routes avoid the link
  bool loss_audited = false;  // Alice: the trail says the link is down (once, not every retry)
  std::string state = "no session yet";
  double qber = 0;  // the last block's estimate
  uint64_t blocks_run = 0, blocks_aborted = 0, secret_bits = 0, keys_out = 0, keys_in = 0;
  double link_seconds = 0;  // simulated time of the pulses sent

  std::mutex block_mu;  // Bob's block in progress
  std::unique_ptr<BobEnd> bob;
  uint64_t bob_block = 0;
  int bob_step = 0;  // 0 none, 1 photons in, 2 estimated, 3 in Cascade
  CascadeBob* cascade = nullptr;

  // Under mu: a block's outcome at this end.
  void record(const BlockStats& s, bool pooled, const Bits& key, const std::string& reason = "") {
    ++blocks_run;
    link_seconds += s.link_seconds;
    if (s.pe_bits > 0) qber = s.qber_estimated;
    if (!pooled) {
      ++blocks_aborted;
      failed = true;
      state = "down: " + (reason.empty() ? s.reason : reason);
      return;
    }
    failed = false;
    state = "up";
    secret_bits += s.final_bits;
    const Bytes k = whole_bytes(key);
    const std::size_t half = k.size() / 2;
    Bytes first(k.begin(), k.begin() + static_cast<std::ptrdiff_t>(half)), second(k.begin() + static_cast<std::ptrdiff_t>(half), k.end());
    (alice ? mine : theirs).add(stream, std::move(first));
    (alice ? theirs : mine).add(stream + half, std::move(second));
    stream += k.size();
    cv.notify_all();
  }
  void reset(const std::string& new_session, const std::string& why) {
    session = new_session;
    mine.clear();
    theirs.clear();
    stream = 0;
    failed = new_session.empty();  // a new session is up until a block says otherwise
    state = new_session.empty() ? why : "session open";
    cv.notify_all();
  }
};

SiteKme::SiteKme(const secure::Identity& me, SiteKmeConfig config)
    : id_(me.id()), me_(me), config_(std::move(config)), trust_(secure::TrustStore::load(config_.pki)), held_(config_.limits.max_key_count) {
  if (me.role() != "kme") throw Error("'" + me.id() + "' has a " + me.role() + " certificate, not a kme one");
  const KmeSite* self = config_.topology.kme(id_);
  if (!self) throw Error("KME '" + id_ + "' is not in the topology");
  for (const LinkPlan* p : config_.topology.links_of(id_))
    for (const std::string& end : {p->a, p->b})
      if (config_.topology.kme(end)->address.port == 0) throw Error("the topology gives KME '" + end + "' no address");
  for (const LinkPlan* p : config_.topology.links_of(id_)) {
    auto l = std::make_unique<Link>();
    l->plan = *p;
    l->alice = p->a == id_;
    l->peer = l->alice ? p->b : p->a;
    if (config_.seed) l->seed = link_seed(*config_.seed, p->a, p->b);
    const Address& at = config_.topology.kme(l->peer)->address;
    net::Limits quick = site_kme_limits();
    quick.timeout = std::chrono::milliseconds(10000);
    quick.retries = 1;
    l->blocks = std::make_unique<net::Client>(me_, trust_, at.host, at.port, quick);
    l->hops = std::make_unique<net::Client>(me_, trust_, at.host, at.port, quick);
    links_.push_back(std::move(l));
  }
  if (!config_.audit_dir.empty()) audit_ = std::make_unique<audit::AuditLog>(config_.audit_dir + "/" + audit::kLogFile, true);
}

SiteKme::~SiteKme() { stop(); }

void SiteKme::audit(const std::string& kind, const json& detail) {
  if (audit_) audit_->append(kind, id_, detail);
}

SiteKme::Link& SiteKme::link_to(const std::string& peer) const {
  for (const auto& l : links_)
    if (l->peer == peer) return *l;
  throw Error("KME '" + id_ + "' has no link to '" + peer + "'");
}

SiteKme::Link& SiteKme::link_from(const net::Peer& p, const std::string& session) const {
  if (p.role != "kme") throw Failure(403, "'" + p.id + "' (" + p.role + ") is not a KME");
  for (const auto& l : links_) {
    if (l->peer != p.id) continue;
    if (!session.empty()) {
      std::lock_guard lock(l->mu);
      if (session != l->session) throw Failure(409, "session " + session.substr(0, 40) + " of link " + id_ + "–" + p.id + " is not the current one");
    }
    return *l;
  }
  throw Failure(403, "KME '" + p.id + "' has no link to '" + id_ + "' in this topology");
}

// --- the links: Alice's block loop, Bob's handlers ------------------------------------------------------

void SiteKme::run_block(Link& l) {
  uint64_t index;
  std::string session;
  {
    std::lock_guard lock(l.mu);
    index = l.next_block;
    session = l.session;
  }
  net::Client& c = *l.blocks;
  Photons ph = send_photons(l.plan.params, l.seed, index);  // SIMULATED: the link model
  AliceEnd a(l.plan.params, std::move(ph.alice), l.seed, index);
  rpc::QkdPhotons m;
  m.set_session(session);
  m.set_block(index);
  m.set_pulses(ph.bob.pulses);
  m.set_detections(ph.bob.bases.size());
  m.set_bases(str(pack_bits(ph.bob.bases)));
  m.set_results(str(pack_bits(ph.bob.results)));
  const auto bases = call<rpc::QkdBases>(c, "QkdPhotons", m);
  const Sample s = a.sift(bits_of(bases.bases(), ph.bob.bases.size(), "Bob's bases"));
  rpc::QkdSample ms;
  ms.set_session(session);
  ms.set_block(index);
  ms.set_bases(str(pack_bits(s.bases)));
  ms.set_sample_seed(s.seed);
  ms.set_sample_bits(s.bits.size());
  ms.set_sample(str(pack_bits(s.bits)));
  const auto est = call<rpc::QkdEstimate>(c, "QkdSample", ms);
  const bool on = a.estimate(est.errors());
  if (on == !est.aborted().empty()) throw Error("the ends of link " + l.plan.a + "–" + l.plan.b + " disagree on the estimate: " + est.aborted());
  bool pooled = false;
  if (on) {
    rpc::QkdCascade mc;
    mc.set_session(session);
    mc.set_block(index);
    mc.set_seed(a.cascade_seed());
    mc.set_start(true);
    for (auto q = call<rpc::QkdQueries>(c, "QkdCascade", mc); q.pass_size() > 0; q = call<rpc::QkdQueries>(c, "QkdCascade", mc)) {
      if (q.lo_size() != q.pass_size() || q.hi_size() != q.pass_size()) throw Error("malformed Cascade queries");
      std::vector<ParityQuery> qs(q.pass_size());
      for (int i = 0; i < q.pass_size(); ++i) qs[i] = {q.pass(i), q.lo(i), q.hi(i)};
      const Bits parities = a.parities(qs);
      mc.set_start(false);
      mc.set_parity_count(parities.size());
      mc.set_parities(str(pack_bits(parities)));
    }
    const std::optional<Amplification> amp = a.amplify();
    rpc::QkdAmplify ma;
    ma.set_session(session);
    ma.set_block(index);
    if (amp) {
      ma.set_verify(str(amp->verify));
      ma.set_bits(amp->bits);
      ma.set_toeplitz_bits(amp->toeplitz.size());
      ma.set_toeplitz(str(pack_bits(amp->toeplitz)));
    } else {
      ma.set_aborted(a.stats().reason);
    }
    const auto r = call<rpc::QkdAmplifyReply>(c, "QkdAmplify", ma);
    if (amp && !r.pooled()) a.abort(r.aborted());
    pooled = amp && r.pooled();
  }
  std::lock_guard lock(l.mu);
  if (l.session != session) return;  // the session ended meanwhile: nothing of this block is kept
  l.next_block = index + 1;
  l.record(a.stats(), pooled, a.key());
}

void SiteKme::run_link(Link& l) {
  auto backoff = std::chrono::milliseconds(100);
  auto pause = [&](std::chrono::milliseconds d) {
    std::unique_lock lock(l.mu);
    l.cv.wait_for(lock, d, [&] { return stopping_.load(); });
  };
  uint64_t blocks_total = 0;
  bool filling = true;
  while (!stopping_) {
    try {
      std::string session;
      {
        std::lock_guard lock(l.mu);
        session = l.session;
      }
      if (session.empty()) {
        rpc::QkdHello h;
        h.set_session(secure::uuid4());
        h.set_first_block(blocks_total);
        call<rpc::QkdHelloReply>(*l.blocks, "QkdHello", h);
        std::lock_guard lock(l.mu);
        l.reset(h.session(), "");
        l.next_block = blocks_total;
        l.loss_audited = false;
        filling = true;
        audit("qkd-link", {{"peer", l.peer}, {"session", h.session()}, {"event", "session opened"}});
      }
      {  // Blocks run from when a share falls below half the pool until both are full again.
        std::unique_lock lock(l.mu);
        const auto low = [&] { return l.mine.size() < config_.pool_bytes / 2 || l.theirs.size() < config_.pool_bytes / 2; };
        const auto full = [&] { return l.mine.size() >= config_.pool_bytes && l.theirs.size() >= config_.pool_bytes; };
        if (full()) filling = false;
        if (!filling) {
          l.cv.wait_for(lock, std::chrono::milliseconds(500), [&] { return stopping_.load() || low(); });
          if (stopping_ || !low()) continue;
          filling = true;
        }
      }
      run_block(l);
      ++blocks_total;
      bool failed;
      {
        std::lock_guard lock(l.mu);
        failed = l.failed;
      }
      if (!failed) {
        backoff = std::chrono::milliseconds(100);
      } else {  // aborted (an eavesdropper, noise): try again later, less often each time
        pause(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      }
    } catch (const std::exception& e) {
      ++blocks_total;  // a block index is never used twice, even half way
      bool note;
      {
        std::lock_guard lock(l.mu);
        l.reset("", std::string("down: ") + e.what());
        note = !l.loss_audited;
        l.loss_audited = true;
      }
      if (stopping_) break;
      if (note) audit("qkd-link", {{"peer", l.peer}, {"event", "session lost"}, {"reason", e.what()}});
      pause(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }
}

void SiteKme::start() {
  for (auto& l : links_)
    if (l->alice) threads_.emplace_back([this, p = l.get()] { run_link(*p); });
}

void SiteKme::stop() {
  stopping_ = true;
  for (auto& l : links_) {
    std::lock_guard lock(l->mu);
    l->cv.notify_all();
  }
  for (auto& l : links_) l->blocks->interrupt();
  for (auto& t : threads_) t.join();
  threads_.clear();
  for (auto& l : links_) {  // close the kept-alive connections to the peers, whose servers would wait for them
    l->blocks->interrupt();
    std::lock_guard lock(l->hop_mu);
    l->hops->interrupt();
  }
}

// --- keys: the first hop here, relays and delivery at the next KMEs ------------------------------------------


std::optional<Bytes> SiteKme::take_link_key(Link& l, std::size_t bytes, std::chrono::steady_clock::time_point deadline,
                                            rpc::QkdHop& hop, std::string& why) {
  std::unique_lock lock(l.mu);
  l.cv.wait_until(lock, deadline, [&] { return stopping_.load() || l.failed || l.mine.size() >= bytes; });
  if (l.mine.size() < bytes) {
    why = l.failed ? l.state : "no key within " + duration_text(config_.key_wait);
    return std::nullopt;
  }
  auto [ranges, key] = l.mine.allocate(bytes);
  ++l.keys_out;
  hop.set_session(l.session);
  hop.clear_ranges();
  for (const Range& r : ranges) {
    auto* x = hop.add_ranges();
    x->set_offset(r.offset);
    x->set_length(r.length);
  }
  return key;
}

rpc::QkdHopReply SiteKme::forward(Link& l, const rpc::QkdHop& hop) {
  try {
    std::lock_guard lock(l.hop_mu);
    return call<rpc::QkdHopReply>(*l.hops, "QkdHop", hop);
  } catch (const std::exception& e) {  // no answer (or a refusal): this link failed the hop
    rpc::QkdHopReply failed;
    failed.set_failed_from(id_);
    failed.set_failed_to(l.peer);
    failed.set_reason(e.what());
    return failed;
  }
}

QkdKey SiteKme::send_key(const std::string& master, const std::string& slave, const std::string& to_kme, std::size_t bytes) {
  rpc::QkdHop h;
  h.set_key_id(secure::uuid4());
  h.set_master(master);
  h.set_slave(slave);
  h.set_hop(1);
  // Routes are tried until one delivers; when none is left, again after a pause (links come up, or
  // back) until key_wait has passed: only then 503.
  const auto deadline = std::chrono::steady_clock::now() + config_.key_wait;
  std::set<LinkName> excluded;
  std::string why = "no link";
  for (std::size_t attempt = 0;; ++attempt) {
    if (attempt > config_.topology.links.size()) {  // every link tried: start over after a pause
      if (stopping_ || std::chrono::steady_clock::now() + std::chrono::milliseconds(200) >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      excluded.clear();
      attempt = 0;
    }
    for (const auto& l : links_) {
      std::lock_guard lock(l->mu);
      if (l->failed) excluded.insert(link_name(id_, l->peer));
    }
    const std::vector<std::string> route = config_.topology.route(id_, to_kme, excluded);
    if (route.empty()) {
      attempt = config_.topology.links.size();  // none left now: pause, then try them all again
      continue;
    }
    Link& l = link_to(route[1]);
    std::optional<Bytes> key = take_link_key(l, bytes, deadline, h, why);
    if (!key) {
      why = "link " + id_ + "–" + l.peer + ": " + why;
      excluded.insert(link_name(id_, l.peer));
      continue;
    }
    h.clear_route();
    for (const auto& r : route) h.add_route(r);
    const rpc::QkdHopReply reply = forward(l, h);
    const json route_json = route;
    if (reply.delivered()) {
      audit("qkd-key", {{"key_ID", h.key_id()}, {"master", master}, {"slave", slave}, {"route", route_json}});
      return {h.key_id(), std::move(*key)};
    }
    why = "link " + reply.failed_from() + "–" + reply.failed_to() + ": " + reply.reason();
    excluded.insert(link_name(reply.failed_from(), reply.failed_to()));
    audit("qkd-reroute", {{"key_ID", h.key_id()}, {"route", route_json}, {"failed", why}});
  }
  throw Failure(503, "no route with key from KME " + id_ + " to " + to_kme + " for slave SAE '" + slave + "' (last failure: " + why + ")");
}

std::string SiteKme::hop(const net::Peer& p, const std::string& body) {
  const auto h = parse<rpc::QkdHop>(body, "QkdHop");
  // Everything is checked before a byte of link key is taken: a refused hop costs neither end any.
  const int n = h.route_size();
  if (n < 2 || h.hop() < 1 || static_cast<int>(h.hop()) >= n) throw Failure(400, "QkdHop: hop " + std::to_string(h.hop()) + " of a route of " + std::to_string(n));
  std::set<std::string> seen;
  for (const auto& k : h.route())
    if (!config_.topology.kme(k) || !seen.insert(k).second) throw Failure(400, "QkdHop: route names '" + k.substr(0, 64) + "' twice or outside the topology");
  if (h.route(h.hop()) != id_ || h.route(h.hop() - 1) != p.id)
    throw Failure(403, "QkdHop from '" + p.id + "' for hop " + h.route(h.hop() - 1) + "→" + h.route(h.hop()) + ": not this link");
  check_key_id(h.key_id());
  check_sae(h.master());
  check_sae(h.slave());
  const bool last = static_cast<int>(h.hop()) == n - 1;  // this KME serves the slave
  if (last) {
    const KmeSite* self = config_.topology.kme(id_);
    if (std::find(self->saes.begin(), self->saes.end(), h.slave()) == self->saes.end())
      throw Failure(400, "QkdHop: slave SAE '" + h.slave() + "' is not served by KME " + id_);
    held_.reserve(1);
  }
  if (h.session().empty()) throw Failure(400, "QkdHop: no session");
  Link& in = link_from(p, h.session());
  std::vector<Range> ranges;
  uint64_t total = 0;
  for (const auto& r : h.ranges()) {
    if (r.length() == 0 || r.length() > 4096 || r.offset() > (uint64_t{1} << 60)) throw Failure(400, "QkdHop: a range out of bounds");
    ranges.push_back({r.offset(), r.length()});
    total += r.length();
  }
  if (ranges.empty() || total > 4096) throw Failure(400, "QkdHop: " + std::to_string(total) + " key bytes");
  if (!h.otp().empty() && h.otp().size() != total) throw Failure(400, "QkdHop: the padded key and the link key differ in length");
  std::optional<Bytes> key;
  {
    std::lock_guard lock(in.mu);
    key = in.theirs.take(ranges);
    if (key) ++in.keys_in;
  }
  if (!key)
    throw Failure(409, "QkdHop " + h.key_id() + ": the link key it names is not in this end's pool (used already: a replay?)");
  for (std::size_t i = 0; i < h.otp().size(); ++i) (*key)[i] ^= static_cast<uint8_t>(h.otp()[i]);

  rpc::QkdHopReply reply;
  if (last) {
    held_.hold(h.key_id(), h.master(), h.slave(), std::move(*key));
    reply.set_delivered(true);
    audit("qkd-delivered", {{"key_ID", h.key_id()}, {"master", h.master()}, {"slave", h.slave()}, {"from", p.id}});
    return reply.SerializeAsString();
  }
  // A trusted relay: forward the key one-time-padded with the next link's key.
  const std::string& next = h.route(h.hop() + 1);
  const auto out = std::find_if(links_.begin(), links_.end(), [&](const auto& l) { return l->peer == next; });
  rpc::QkdHop fwd = h;
  fwd.set_hop(h.hop() + 1);
  std::string why = "no such link";
  std::optional<Bytes> pad;
  if (out != links_.end()) pad = take_link_key(**out, total, std::chrono::steady_clock::now() + config_.key_wait, fwd, why);
  if (pad) {
    std::string otp(total, '\0');
    for (std::size_t i = 0; i < total; ++i) otp[i] = static_cast<char>((*key)[i] ^ (*pad)[i]);
    fwd.set_otp(otp);
    reply = forward(**out, fwd);
  } else {
    reply.set_failed_from(id_);
    reply.set_failed_to(next);
    reply.set_reason(why);
  }
  audit("qkd-relay", {{"key_ID", h.key_id()}, {"from", p.id}, {"to", next}, {"delivered", reply.delivered()}, {"reason", reply.reason()}});
  return reply.SerializeAsString();
}

// --- ETSI GS QKD 014 for this site's SAEs -------------------------------------------------------------------

namespace {
void check_own(const Topology& t, const std::string& kme, const std::string& sae) {
  const KmeSite* self = t.kme(kme);
  if (std::find(self->saes.begin(), self->saes.end(), sae) == self->saes.end())
    throw Failure(401, "SAE '" + sae + "' is not served by KME " + kme + " (its site's KME serves it)");
}
}  // namespace

std::string SiteKme::status(const std::string& master, const std::string& slave) {
  check_own(config_.topology, id_, master);
  check_sae(slave);
  const KmeSite* target = config_.topology.kme_of_sae(slave);
  return status_json(id_, target ? target->id : "", master, slave, held_.count(master, slave), config_.limits);
}

std::vector<QkdKey> SiteKme::enc_keys(const std::string& master, const std::string& slave, int number, int size_bits) {
  check_own(config_.topology, id_, master);
  if (slave == master) throw Failure(400, "master and slave SAE are the same ('" + slave + "')");
  // The topology says which SAEs exist and where; the slave's KME releases the key only to the slave's
  // own certificate (mutual TLS, checked on every request), so no PKI folder of all sites is needed here.
  config_.limits.check(number, size_bits);
  const KmeSite* target = config_.topology.kme_of_sae(slave);
  if (!target) throw Failure(400, "slave SAE '" + slave + "' is served by no KME of this network");
  if (target->id == id_) throw Failure(400, "slave SAE '" + slave + "' is served by this KME too: no QKD link lies between them");
  std::vector<QkdKey> out;
  for (int i = 0; i < number; ++i) out.push_back(send_key(master, slave, target->id, static_cast<std::size_t>(size_bits / 8)));
  return out;
}

std::vector<QkdKey> SiteKme::dec_keys(const std::string& slave, const std::string& master, const std::vector<std::string>& ids) {
  check_own(config_.topology, id_, slave);
  return held_.take(slave, master, ids, config_.limits.max_key_per_request);
}

json SiteKme::links() const {
  json out = json::array();
  for (const auto& l : links_) {
    std::lock_guard lock(l->mu);
    out.push_back({{"peer", l->peer},
                   {"role", l->alice ? "alice" : "bob"},
                   {"session", l->session},
                   {"next_block", l->next_block},
                   {"km", l->plan.params.km},
                   {"eavesdropper", l->plan.params.eve_fraction},
                   {"up", !l->session.empty() && !l->failed},  // a session, and its last block (if any) gave key
                   {"state", l->state},
                   {"qber", l->qber},
                   {"blocks", l->blocks_run},
                   {"aborted_blocks", l->blocks_aborted},
                   {"secret_bits", l->secret_bits},
                   {"key_rate_bps", l->link_seconds > 0 ? static_cast<double>(l->secret_bits) / l->link_seconds : 0.0},
                   {"pool_bytes", {{"mine", l->mine.size()}, {"theirs", l->theirs.size()}}},
                   {"keys_sent", l->keys_out},
                   {"keys_received", l->keys_in},
                   {"simulated", "BB84 link model (bb84.h), not photonic hardware"}});
  }
  return out;
}

std::string SiteKme::metrics() const {
  std::ostringstream m;
  const auto family = [&](const char* name, const char* type, const char* help) {
    m << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  };
  const json ls = links();
  const auto each = [&](const char* name, const std::function<std::string(const json&)>& value) {
    for (const auto& l : ls) m << name << "{kme=\"" << id_ << "\",peer=\"" << l["peer"].get<std::string>() << "\"} " << value(l) << '\n';
  };
  family("gng_qkd_link_up", "gauge", "1 when the link's last block gave key (simulated BB84 link)");
  each("gng_qkd_link_up", [](const json& l) { return l["up"].get<bool>() ? "1" : "0"; });
  family("gng_qkd_link_qber", "gauge", "estimated QBER of the link's last block");
  each("gng_qkd_link_qber", [](const json& l) { return l["qber"].dump(); });
  family("gng_qkd_link_key_rate_bps", "gauge", "secret bits per second of simulated link time");
  each("gng_qkd_link_key_rate_bps", [](const json& l) { return l["key_rate_bps"].dump(); });
  family("gng_qkd_link_pool_bytes", "gauge", "key bytes pooled at this end (both shares)");
  each("gng_qkd_link_pool_bytes", [](const json& l) { return std::to_string(l["pool_bytes"]["mine"].get<std::size_t>() + l["pool_bytes"]["theirs"].get<std::size_t>()); });
  family("gng_qkd_link_blocks_total", "counter", "blocks run on the link");
  each("gng_qkd_link_blocks_total", [](const json& l) { return l["blocks"].dump(); });
  family("gng_qkd_link_aborted_blocks_total", "counter", "blocks that gave no key");
  each("gng_qkd_link_aborted_blocks_total", [](const json& l) { return l["aborted_blocks"].dump(); });
  return m.str();
}

void SiteKme::mount(net::Server& server) {
  mount_etsi(server, *this);
  server.rpc("QkdHello", [this](const net::Peer& p, const std::string& body) {
    const auto h = parse<rpc::QkdHello>(body, "QkdHello");
    Link& l = link_from(p, "");
    if (l.alice) throw Failure(403, "'" + p.id + "' is Bob on link " + l.plan.a + "–" + l.plan.b + ": Alice opens its sessions");
    if (h.session().empty() || h.session().size() > 64) throw Failure(400, "QkdHello: invalid session");
    {
      std::scoped_lock lock(l.block_mu, l.mu);
      l.reset(h.session(), "");
      l.next_block = h.first_block();
      l.bob.reset();
      l.bob_step = 0;
    }
    audit("qkd-link", {{"peer", l.peer}, {"session", h.session()}, {"event", "session opened"}});
    return rpc::QkdHelloReply().SerializeAsString();
  });
  // Bob's steps of a block, in order. `step` is the state the message requires.
  const auto bob_step = [this](const net::Peer& p, const std::string& session, uint64_t block, int step, bool start_block = false) -> Link& {
    Link& l = link_from(p, session);
    if (l.alice) throw Failure(403, "'" + p.id + "' is Bob on link " + l.plan.a + "–" + l.plan.b);
    std::lock_guard lock(l.mu);
    const uint64_t expected = start_block ? l.next_block : l.bob_block;
    if (block != expected || l.bob_step != step)
      throw Failure(409, "block " + std::to_string(block) + " out of order on link " + l.plan.a + "–" + l.plan.b + " (expected block " +
                             std::to_string(expected) + ", step " + std::to_string(l.bob_step) + ")");
    return l;
  };
  const auto finish = [](Link& l, bool pooled, const std::string& reason = "") {  // under block_mu
    std::lock_guard lock(l.mu);
    l.record(l.bob->stats(), pooled, l.bob->key(), reason);
    l.next_block = l.bob_block + 1;
    l.bob_step = 0;
    l.cascade = nullptr;
  };
  server.rpc("QkdPhotons", [this, bob_step](const net::Peer& p, const std::string& body) {
    const auto m = parse<rpc::QkdPhotons>(body, "QkdPhotons");
    Link& l0 = link_from(p, m.session());
    std::lock_guard block(l0.block_mu);
    Link& l = bob_step(p, m.session(), m.block(), 0, true);
    if (m.detections() > 4 * kMaxSiftedBits) throw Failure(400, "QkdPhotons: too many detections");
    BobRecord rec{m.pulses(), bits_of(m.bases(), m.detections(), "bases"), bits_of(m.results(), m.detections(), "results")};
    l.bob = std::make_unique<BobEnd>(l.plan.params, std::move(rec));
    {
      std::lock_guard lock(l.mu);
      l.bob_block = m.block();
      l.bob_step = 1;
    }
    rpc::QkdBases r;
    r.set_bases(str(pack_bits(l.bob->bases())));
    return r.SerializeAsString();
  });
  server.rpc("QkdSample", [this, bob_step, finish](const net::Peer& p, const std::string& body) {
    const auto m = parse<rpc::QkdSample>(body, "QkdSample");
    Link& l0 = link_from(p, m.session());
    std::lock_guard block(l0.block_mu);
    Link& l = bob_step(p, m.session(), m.block(), 1);
    if (m.sample_bits() > l.bob->bases().size()) throw Failure(400, "QkdSample: a sample larger than the block");
    Sample s{bits_of(m.bases(), l.bob->bases().size(), "Alice's bases"), m.sample_seed(), bits_of(m.sample(), m.sample_bits(), "sample")};
    rpc::QkdEstimate r;
    try {
      r.set_errors(l.bob->sift(s));
    } catch (const Error& e) {
      throw Failure(400, std::string("QkdSample: ") + e.what());
    }
    if (!l.bob->estimate()) {
      r.set_aborted(l.bob->stats().reason);
      finish(l, false);
    } else {
      std::lock_guard lock(l.mu);
      l.bob_step = 2;
    }
    return r.SerializeAsString();
  });
  server.rpc("QkdCascade", [this, bob_step](const net::Peer& p, const std::string& body) {
    const auto m = parse<rpc::QkdCascade>(body, "QkdCascade");
    Link& l0 = link_from(p, m.session());
    std::lock_guard block(l0.block_mu);
    Link& l = bob_step(p, m.session(), m.block(), m.start() ? 2 : 3);
    if (m.start()) {
      l.cascade = &l.bob->cascade(m.seed());
      std::lock_guard lock(l.mu);
      l.bob_step = 3;
    } else {
      if (m.parity_count() != l.cascade->queries().size()) throw Failure(400, "QkdCascade: parities for other queries");
      try {
        l.cascade->answer(bits_of(m.parities(), m.parity_count(), "parities"));
      } catch (const Error& e) {
        throw Failure(400, std::string("QkdCascade: ") + e.what());
      }
    }
    rpc::QkdQueries r;
    for (const ParityQuery& q : l.cascade->queries()) {
      r.add_pass(q.pass);
      r.add_lo(q.lo);
      r.add_hi(q.hi);
    }
    return r.SerializeAsString();
  });
  server.rpc("QkdAmplify", [this, bob_step, finish](const net::Peer& p, const std::string& body) {
    const auto m = parse<rpc::QkdAmplify>(body, "QkdAmplify");
    Link& l0 = link_from(p, m.session());
    std::lock_guard block(l0.block_mu);
    Link& l = bob_step(p, m.session(), m.block(), 3);
    rpc::QkdAmplifyReply r;
    bool pooled = false;
    if (m.aborted().empty()) {
      if (m.toeplitz_bits() > 2 * kMaxSiftedBits) throw Failure(400, "QkdAmplify: Toeplitz seed too long");
      Amplification a{Bytes(m.verify().begin(), m.verify().end()), bits_of(m.toeplitz(), m.toeplitz_bits(), "Toeplitz seed"), m.bits()};
      pooled = l.bob->amplify(a);
      if (!pooled) r.set_aborted(l.bob->stats().reason);
    } else {
      r.set_aborted(m.aborted());
    }
    r.set_pooled(pooled);
    finish(l, pooled, m.aborted());
    return r.SerializeAsString();
  });
  server.rpc("QkdHop", [this](const net::Peer& p, const std::string& body) { return hop(p, body); });
  server.route("GET", "/api/v1/gng/links", [this](const net::Peer&, const net::Request&) {
    return net::Response{200, json{{"kme", id_}, {"links", links()}}.dump()};
  });
  server.route("GET", "/metrics", [this](const net::Peer&, const net::Request&) {
    return net::Response{200, metrics(), "text/plain; version=0.0.4"};
  });
}

}  // namespace gng::qkd
