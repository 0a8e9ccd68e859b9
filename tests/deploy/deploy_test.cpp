// deploy/: the container image, the compose file, the Kubernetes manifests and their scripts, as
// far as this machine can check them without a container engine or a cluster: their structure,
// that what they reference is defined, that gng's own parsers accept the run file and the sites'
// node.yaml, that they agree with each other (ports, names, paths, shards), that no secret is baked
// in, and that deploy/secrets.sh makes the layout they mount with the gng binary.
#include <gtest/gtest.h>
#include <openssl/x509v3.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "lifecycle/config.h"
#include "lifecycle/generate.h"
#include "node/node.h"
#include "secure/pki.h"
#include "support/paths.h"

namespace gng {
namespace {

namespace fs = std::filesystem;
const fs::path kDeploy = fs::path(GNG_SOURCE_DIR) / "deploy";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in) << "cannot read " << p;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
std::string str(const YAML::Node& n) { return n && n.IsScalar() ? n.Scalar() : ""; }
// n[k1][k2]…, or an undefined node when a key on the way is missing (yaml-cpp throws on that).
YAML::Node at(const YAML::Node& n, std::initializer_list<const char*> keys) {
  YAML::Node cur;
  cur.reset(n);
  for (const char* k : keys) {
    if (!cur.IsMap() || !std::as_const(cur)[k]) return YAML::Node(YAML::NodeType::Undefined);
    cur.reset(std::as_const(cur)[k]);
  }
  return cur;
}
std::string emit(const YAML::Node& n) {
  YAML::Emitter out;
  out << n;
  return out.c_str();
}
// Every key/value of `selector` (non-empty) is among `labels`.
bool selects(const YAML::Node& selector, const YAML::Node& labels) {
  if (!selector || !selector.IsMap() || selector.size() == 0 || !labels || !labels.IsMap()) return false;
  for (const auto& kv : selector)
    if (str(labels[kv.first.Scalar()]) != kv.second.Scalar()) return false;
  return true;
}

// A run file as `gng run` takes it (space and policy inline) and checks it before it makes anything.
struct RunFile {
  RunConfig c;
  Policy p;
};
RunFile parse_run(const std::string& text, const std::string& source) {
  const YAML::Node root = YAML::Load(text);
  RunFile r{RunConfig::from_yaml(text, source, emit(root["space"]), emit(root["policy"])), {}};
  r.p = Policy::from_yaml(r.c.policy_text, source + " (policy)");
  load_space(r.c, r.p, InputShape{});
  return r;
}
RunFile grid() { return parse_run(slurp(kDeploy / "grid.yaml"), (kDeploy / "grid.yaml").string()); }

// What every site's node.yaml must agree on with the run: its shard of the same images.
void expect_site_fits_run(const node::NodeConfig& n, const RunFile& r, const std::string& what) {
  EXPECT_EQ(n.shards, r.c.min_nodes) << what << ": shard.of is the run's nodes.min";
  EXPECT_EQ(n.holdout, r.c.validation) << what << ": holdout is the run's data.validation";
  EXPECT_EQ(n.train_limit, r.c.train_limit) << what << ": train_limit is the run's";
  EXPECT_EQ(n.seed, r.c.seed) << what << ": shard.seed is the run's search.seed";
  if (r.p.qkd == "required") {
    EXPECT_NE(n.qkd, "off") << what << ": the run refuses sites without a KME";
  }
}

// The uid of the Containerfile's last USER (-1 when there is none).
int image_uid() {
  std::smatch m;
  int uid = -1;
  std::istringstream in(slurp(kDeploy / "Containerfile"));
  for (std::string line; std::getline(in, line);) {
    if (std::regex_match(line, m, std::regex(R"(\s*FROM\s.*)"))) uid = -1;
    if (std::regex_match(line, m, std::regex(R"(\s*USER\s+(\S+)\s*)"))) uid = std::regex_match(m[1].str(), std::regex("[0-9]+")) ? std::stoi(m[1]) : (m[1] == "root" ? 0 : -2);
  }
  return uid;
}

// --- Kubernetes ----------------------------------------------------------------------------------

struct K8s {
  std::vector<YAML::Node> docs;
  std::set<std::string> files;
  YAML::Node find(const std::string& kind, const std::string& name = "") const {
    for (const auto& d : docs)
      if (str(d["kind"]) == kind && (name.empty() || str(d["metadata"]["name"]) == name)) return d;
    return YAML::Node();
  }
  std::vector<YAML::Node> all(const std::string& kind) const {
    std::vector<YAML::Node> out;
    for (const auto& d : docs)
      if (str(d["kind"]) == kind) out.push_back(d);
    return out;
  }
};
K8s k8s() {
  K8s k;
  for (const auto& e : fs::directory_iterator(kDeploy / "k8s")) {
    if (e.path().extension() != ".yaml" || e.path().filename() == "kustomization.yaml") continue;
    k.files.insert(e.path().filename().string());
    for (const auto& d : YAML::LoadAll(slurp(e.path())))
      if (d && !d.IsNull()) k.docs.push_back(d);
  }
  return k;
}
std::vector<YAML::Node> workloads(const K8s& k) {
  std::vector<YAML::Node> w = k.all("Deployment");
  for (const auto& s : k.all("StatefulSet")) w.push_back(s);
  return w;
}
// A pod template's containers, init containers included.
std::vector<YAML::Node> containers(const YAML::Node& pod) {
  std::vector<YAML::Node> out;
  for (const char* key : {"initContainers", "containers"})
    for (const auto& c : pod[key]) out.push_back(c);
  return out;
}
std::string mount_path(const YAML::Node& container, const std::string& volume) {
  for (const auto& m : container["volumeMounts"])
    if (str(m["name"]) == volume) return str(m["mountPath"]);
  return "";
}
YAML::Node volume(const YAML::Node& pod, const std::string& name) {
  for (const auto& v : pod["volumes"])
    if (str(v["name"]) == name) return v;
  return YAML::Node();
}
// Every line of enrol.sh that applies a Secret: name → the keys it writes (--from-file=KEY=…).
std::map<std::string, std::set<std::string>> secrets_created_by_enrol_sh() {
  std::string text = std::regex_replace(slurp(kDeploy / "k8s/enrol.sh"), std::regex("\\\\\n"), " ");
  std::map<std::string, std::set<std::string>> out;
  std::istringstream in(text);
  std::smatch m;
  for (std::string line; std::getline(in, line);) {
    if (!std::regex_search(line, m, std::regex(R"(^\s*(?:\[.*\]\s*\|\|\s*)?apply_secret\s+([a-z0-9-]+)(.*))"))) continue;
    auto& keys = out[m[1]];
    const std::string rest = m[2];
    static const std::regex from_file(R"(--from-file=\"?([^=\"\s]+)=)");
    for (std::sregex_iterator it(rest.begin(), rest.end(), from_file), end; it != end; ++it)
      keys.insert((*it)[1]);
  }
  return out;
}

TEST(Deploy, KubernetesManifestsAreWellFormed) {
  const K8s k = k8s();
  ASSERT_FALSE(k.docs.empty());
  // kustomization.yaml lists every manifest, and nothing else.
  std::set<std::string> listed;
  for (const auto& r : YAML::LoadFile((kDeploy / "k8s/kustomization.yaml").string())["resources"]) listed.insert(r.Scalar());
  EXPECT_EQ(listed, k.files);

  const auto namespaces = k.all("Namespace");
  ASSERT_EQ(namespaces.size(), 1u);
  const std::string ns = str(namespaces[0]["metadata"]["name"]);
  std::set<std::string> seen;
  for (const auto& d : k.docs) {
    const std::string what = str(d["kind"]) + " " + str(d["metadata"]["name"]);
    EXPECT_FALSE(str(d["apiVersion"]).empty()) << what;
    EXPECT_FALSE(str(d["kind"]).empty()) << emit(d);
    EXPECT_FALSE(str(d["metadata"]["name"]).empty()) << emit(d);
    if (str(d["kind"]) != "Namespace") {
      EXPECT_EQ(str(d["metadata"]["namespace"]), ns) << what;
    }
    EXPECT_TRUE(seen.insert(what).second) << what << " is defined twice";
    EXPECT_EQ(emit(d).find("PRIVATE KEY"), std::string::npos) << what << " holds key material";
  }
  for (const char* kind : {"Namespace", "ConfigMap", "PersistentVolumeClaim", "Deployment", "Service", "StatefulSet"})
    EXPECT_TRUE(k.find(kind)) << "no " << kind;
  EXPECT_EQ(k.all("Deployment").size(), 1u);
  EXPECT_EQ(k.all("StatefulSet").size(), 1u);
  EXPECT_TRUE(k.all("Secret").empty()) << "Secrets are made from deploy/secrets.sh's output, never committed";
}

TEST(Deploy, KubernetesWorkloadsSelectTheirPodsAndRunAsTheImagesUser) {
  const K8s k = k8s();
  const YAML::Node dep = k.find("Deployment"), sts = k.find("StatefulSet");
  ASSERT_TRUE(dep && sts);
  EXPECT_EQ(dep["spec"]["replicas"].as<int>(), 1);
  EXPECT_EQ(str(dep["spec"]["strategy"]["type"]), "Recreate") << "one writer of the run folder at a time";
  // Each selects its own pods and not the other's.
  EXPECT_TRUE(selects(dep["spec"]["selector"]["matchLabels"], dep["spec"]["template"]["metadata"]["labels"]));
  EXPECT_TRUE(selects(sts["spec"]["selector"]["matchLabels"], sts["spec"]["template"]["metadata"]["labels"]));
  EXPECT_FALSE(selects(dep["spec"]["selector"]["matchLabels"], sts["spec"]["template"]["metadata"]["labels"]));
  EXPECT_FALSE(selects(sts["spec"]["selector"]["matchLabels"], dep["spec"]["template"]["metadata"]["labels"]));
  // The StatefulSet's governing Service exists, is headless and selects its pods.
  const YAML::Node governing = k.find("Service", str(sts["spec"]["serviceName"]));
  ASSERT_TRUE(governing) << "serviceName " << str(sts["spec"]["serviceName"]);
  EXPECT_EQ(str(governing["spec"]["clusterIP"]), "None");
  EXPECT_TRUE(selects(governing["spec"]["selector"], sts["spec"]["template"]["metadata"]["labels"]));
  // Every NetworkPolicy applies to pods that exist.
  for (const auto& np : k.all("NetworkPolicy")) {
    bool some = false;
    for (const auto& w : workloads(k)) some = some || selects(np["spec"]["podSelector"]["matchLabels"], w["spec"]["template"]["metadata"]["labels"]);
    EXPECT_TRUE(some) << "NetworkPolicy " << str(np["metadata"]["name"]) << " selects no pod";
  }

  const int uid = image_uid();
  ASSERT_GT(uid, 0) << "the Containerfile's last USER must be a non-root uid";
  for (const auto& w : workloads(k)) {
    const std::string what = str(w["kind"]) + " " + str(w["metadata"]["name"]);
    const YAML::Node pod = w["spec"]["template"]["spec"];
    EXPECT_EQ(str(at(pod, {"securityContext", "runAsNonRoot"})), "true") << what;
    EXPECT_EQ(str(at(pod, {"securityContext", "runAsUser"})), std::to_string(uid)) << what << ": the image's user";
    std::set<std::string> volumes, claims, mounted;
    for (const auto& v : pod["volumes"]) volumes.insert(str(v["name"]));
    for (const auto& t : w["spec"]["volumeClaimTemplates"]) claims.insert(str(t["metadata"]["name"]));
    for (const auto& c : containers(pod)) {
      const std::string cw = what + " container " + str(c["name"]);
      EXPECT_FALSE(str(c["image"]).empty()) << cw;
      EXPECT_FALSE(str(at(c, {"resources", "requests", "cpu"})).empty()) << cw;
      EXPECT_FALSE(str(at(c, {"resources", "requests", "memory"})).empty()) << cw;
      EXPECT_EQ(str(at(c, {"securityContext", "allowPrivilegeEscalation"})), "false") << cw;
      for (const auto& m : c["volumeMounts"]) {
        EXPECT_TRUE(volumes.count(str(m["name"])) || claims.count(str(m["name"]))) << cw << " mounts an undefined volume " << str(m["name"]);
        mounted.insert(str(m["name"]));
      }
    }
    for (const auto& v : volumes) EXPECT_TRUE(mounted.count(v)) << what << ": volume " << v << " is mounted nowhere";
    for (const auto& c : claims) EXPECT_TRUE(mounted.count(c)) << what << ": volumeClaimTemplate " << c << " is mounted nowhere";
  }
  EXPECT_FALSE(sts["spec"]["volumeClaimTemplates"].size() == 0) << "each site needs a volume of its own";
}

TEST(Deploy, KubernetesReferencesResolve) {
  const K8s k = k8s();
  std::map<std::string, std::set<std::string>> secrets;  // referenced Secret → keys it must hold
  for (const auto& w : workloads(k)) {
    const std::string what = str(w["kind"]) + " " + str(w["metadata"]["name"]);
    const YAML::Node pod = w["spec"]["template"]["spec"];
    auto config_map = [&](const YAML::Node& ref) {
      const YAML::Node cm = k.find("ConfigMap", str(ref["name"]));
      ASSERT_TRUE(cm) << what << " names an undefined ConfigMap " << str(ref["name"]);
      for (const auto& item : ref["items"]) EXPECT_TRUE(cm["data"][str(item["key"])]) << what << ": ConfigMap " << str(ref["name"]) << " has no key " << str(item["key"]);
    };
    auto secret = [&](const std::string& name, const YAML::Node& items) {
      auto& keys = secrets[name];
      for (const auto& item : items) keys.insert(str(item["key"]));
    };
    for (const auto& v : pod["volumes"]) {
      if (v["configMap"]) config_map(v["configMap"]);
      if (v["secret"]) secret(str(v["secret"]["secretName"]), v["secret"]["items"]);
      if (v["persistentVolumeClaim"]) {
        EXPECT_TRUE(k.find("PersistentVolumeClaim", str(v["persistentVolumeClaim"]["claimName"]))) << what << " names an undefined claim";
      }
      for (const auto& s : at(v, {"projected", "sources"})) {
        if (s["configMap"]) config_map(s["configMap"]);
        if (s["secret"]) secret(str(s["secret"]["name"]), s["secret"]["items"]);
      }
    }
    for (const auto& c : containers(pod)) {
      for (const auto& e : c["env"]) {
        if (const auto ref = at(e, {"valueFrom", "configMapKeyRef"})) config_map(ref);
        if (const auto ref = at(e, {"valueFrom", "secretKeyRef"})) secrets[str(ref["name"])].insert(str(ref["key"]));
      }
      for (const auto& e : c["envFrom"]) {
        if (e["configMapRef"]) config_map(e["configMapRef"]);
        if (e["secretRef"]) secrets[str(e["secretRef"]["name"])];
      }
    }
  }
  // The Secrets are created by deploy/k8s/enrol.sh from deploy/secrets.sh's output: exactly those
  // the manifests reference, each with the keys they mount.
  const auto created = secrets_created_by_enrol_sh();
  ASSERT_FALSE(secrets.empty());
  for (const auto& [name, keys] : secrets) {
    ASSERT_TRUE(created.count(name)) << "Secret " << name << " is referenced and neither defined nor made by k8s/enrol.sh";
    for (const auto& key : keys) EXPECT_TRUE(created.at(name).count(key)) << "k8s/enrol.sh puts no key " << key << " in Secret " << name;
  }
  for (const auto& [name, keys] : created) EXPECT_TRUE(secrets.count(name)) << "k8s/enrol.sh makes Secret " << name << ", which nothing mounts";
  // The README documents the same names.
  const std::string readme = slurp(kDeploy / "README.md");
  for (const auto& [name, keys] : secrets) EXPECT_NE(readme.find(name), std::string::npos) << "deploy/README.md does not name Secret " << name;
}

TEST(Deploy, KubernetesRunFileIsGridYamlAndSitesDialTheService) {
  const K8s k = k8s();
  const YAML::Node dep = k.find("Deployment"), sts = k.find("StatefulSet");
  ASSERT_TRUE(dep && sts);
  const YAML::Node pod = dep["spec"]["template"]["spec"], orch = pod["containers"][0];
  // The run file: mounted from a ConfigMap, named by the container's first argument, deploy/grid.yaml word for word.
  const YAML::Node runs = volume(pod, "run-file");
  ASSERT_TRUE(runs && runs["configMap"]);
  const YAML::Node cm = k.find("ConfigMap", str(runs["configMap"]["name"]));
  ASSERT_TRUE(cm);
  const std::string key = str(runs["configMap"]["items"][0]["key"]);
  EXPECT_EQ(str(orch["args"][0]), mount_path(orch, "run-file") + "/" + str(runs["configMap"]["items"][0]["path"]));
  const std::string text = str(cm["data"][key]);
  EXPECT_EQ(text, slurp(kDeploy / "grid.yaml")) << "deploy/k8s/run.yaml must hold deploy/grid.yaml";
  RunFile r;
  try {
    r = parse_run(text, "deploy/k8s/run.yaml (" + key + ")");
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }
  // pki: the projected folder of the orchestrator's identity and the CA's certificate and deny list.
  std::set<std::string> paths;
  for (const auto& v : pod["volumes"])
    if (mount_path(orch, str(v["name"])) == r.c.pki)
      for (const auto& s : at(v, {"projected", "sources"}))
        for (const auto& item : at(s, {"secret", "items"})) paths.insert(str(item["path"]));
  EXPECT_EQ(paths, (std::set<std::string>{"ca.pem", "crl.pem", "issued/orchestrator.pem", "issued/orchestrator.key.pem"}));

  // The Service: the orchestrator's pods, on the run's hub port, to the container's hub port.
  const YAML::Node svc = [&] {
    for (const auto& s : k.all("Service"))
      if (selects(s["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"])) return s;
    return YAML::Node();
  }();
  ASSERT_TRUE(svc) << "no Service selects the orchestrator";
  EXPECT_TRUE(str(svc["spec"]["type"]).empty() || str(svc["spec"]["type"]) == "ClusterIP");
  EXPECT_FALSE(selects(svc["spec"]["selector"], sts["spec"]["template"]["metadata"]["labels"]));
  const YAML::Node port = svc["spec"]["ports"][0];
  EXPECT_EQ(port["port"].as<int>(), r.c.listen.port) << "the Service's port is the run's nodes.listen";
  int target = -1;
  for (const auto& p : orch["ports"])
    if (str(p["name"]) == str(port["targetPort"]) || str(p["containerPort"]) == str(port["targetPort"])) target = p["containerPort"].as<int>();
  EXPECT_EQ(target, r.c.listen.port) << "targetPort " << str(port["targetPort"]) << " is not the hub's port";

  // The sites: as many as the run waits for, each with its node.yaml made from the template.
  const int replicas = sts["spec"]["replicas"].as<int>();
  EXPECT_EQ(replicas, r.c.min_nodes);
  const YAML::Node site_pod = sts["spec"]["template"]["spec"];
  const YAML::Node site_cm = k.find("ConfigMap", str(at(volume(site_pod, "site-config"), {"configMap", "name"})));
  ASSERT_TRUE(site_cm);
  const std::string enrol = str(site_cm["data"]["enrol.sh"]);
  EXPECT_NE(enrol.find("gng node init"), std::string::npos) << "a site makes its own key";
  EXPECT_NE(enrol.find("SITE_ID"), std::string::npos);
  EXPECT_NE(enrol.find("SHARD_INDEX"), std::string::npos);
  bool pod_name = false;
  for (const auto& e : site_pod["initContainers"][0]["env"])
    pod_name = pod_name || (str(e["name"]) == "POD_NAME" && str(at(e, {"valueFrom", "fieldRef", "fieldPath"})) == "metadata.name");
  EXPECT_TRUE(pod_name) << "the site's id is its pod name";
  const std::string ns = str(k.find("Namespace")["metadata"]["name"]), service = str(svc["metadata"]["name"]);
  for (int i = 0; i < replicas; ++i) {
    const std::string id = str(sts["metadata"]["name"]) + "-" + std::to_string(i);
    std::string yaml = std::regex_replace(str(site_cm["data"]["node.yaml"]), std::regex("SITE_ID"), id);
    yaml = std::regex_replace(yaml, std::regex("SHARD_INDEX"), std::to_string(i));
    try {
      const auto n = node::NodeConfig::from_yaml(yaml, id + "'s node.yaml");
      EXPECT_EQ(n.id, id);
      EXPECT_EQ(n.shard, i);
      EXPECT_TRUE(n.orchestrator.host == service || n.orchestrator.host.rfind(service + "." + ns + ".", 0) == 0) << n.orchestrator.host;
      EXPECT_EQ(n.orchestrator.port, port["port"].as<int>());
      EXPECT_EQ(fs::path(n.pki).parent_path().string(), mount_path(site_pod["containers"][0], "work")) << "the key lives in the site's volume";
      expect_site_fits_run(n, r, id);
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }
}

// --- compose ----------------------------------------------------------------------------------------

TEST(Deploy, ComposeRunsTheOrchestratorAndThreeSitesWithMountedSecrets) {
  const YAML::Node compose = YAML::LoadFile((kDeploy / "compose.yaml").string());
  const RunFile r = grid();
  const YAML::Node services = compose["services"];
  ASSERT_TRUE(services && services["orchestrator"]);
  std::set<std::string> sites;
  for (const auto& s : services)
    if (s.first.Scalar() != "orchestrator") sites.insert(s.first.Scalar());
  EXPECT_EQ(sites, (std::set<std::string>{"site-a", "site-b", "site-c"}));
  EXPECT_EQ(static_cast<int>(sites.size()), r.c.min_nodes);

  // A secret: a folder of secrets.sh's output, mounted at /run/secrets/TARGET; returns TARGET's path.
  std::set<std::string> used_secrets, used_volumes;
  auto mounted_secret = [&](const YAML::Node& svc, const std::string& what, const std::string& folder) {
    EXPECT_EQ(svc["secrets"].size(), 1u) << what;
    const YAML::Node ref = svc["secrets"][0];
    const std::string name = str(ref["source"]);
    EXPECT_TRUE(used_secrets.insert(name).second) << what << " shares secret " << name;
    const std::string file = str(compose["secrets"][name]["file"]);
    EXPECT_EQ(file, "${GNG_SECRETS:-./secrets}/" + folder) << what;
    return "/run/secrets/" + str(ref["target"]);
  };
  // A file of deploy/ bind-mounted read-only; returns where.
  auto mounted_file = [&](const YAML::Node& svc, const std::string& file) {
    for (const auto& v : svc["volumes"]) {
      const std::string s = v.Scalar();
      if (s.rfind("./" + file + ":", 0) == 0 && s.size() > 3 && s.substr(s.size() - 3) == ":ro") return s.substr(file.size() + 3, s.size() - file.size() - 6);
    }
    return std::string();
  };
  auto named_volume_at = [&](const YAML::Node& svc, const std::string& path) {
    for (const auto& v : svc["volumes"]) {
      const std::string s = v.Scalar(), name = s.substr(0, s.find(':'));
      if (s == name + ":" + path && compose["volumes"][name]) return used_volumes.insert(name).second;
    }
    return false;
  };
  for (const auto& s : services) {
    const std::string what = s.first.Scalar();
    EXPECT_FALSE(s.second["build"]) << what << ": the image is built apart (podman.sh), never with secrets as build args";
    EXPECT_FALSE(str(s.second["image"]).empty()) << what;
    EXPECT_TRUE(at(s.second, {"ulimits", "nofile"}) && at(s.second, {"ulimits", "nproc"})) << what;
  }

  const YAML::Node orch = services["orchestrator"];
  EXPECT_FALSE(orch["ports"]) << "the hub port is open on the compose network only";
  bool exposed = false;
  for (const auto& e : orch["expose"]) exposed = exposed || e.as<std::string>() == std::to_string(r.c.listen.port);
  EXPECT_TRUE(exposed) << "expose the run's nodes.listen port " << r.c.listen.port;
  const std::string run_file = mounted_file(orch, "grid.yaml");
  EXPECT_FALSE(run_file.empty());
  EXPECT_EQ(str(orch["command"][0]), run_file);
  EXPECT_EQ(mounted_secret(orch, "orchestrator", "orchestrator"), r.c.pki) << "the run file's pki: is the mounted secret";
  EXPECT_TRUE(named_volume_at(orch, str(orch["command"][1]))) << "the run folder is on a named volume";

  std::set<int> shards;
  for (const auto& id : sites) {
    const YAML::Node svc = services[id];
    const std::string config = mounted_file(svc, "sites/" + id + ".yaml");
    ASSERT_FALSE(config.empty()) << id << " mounts no deploy/sites/" << id << ".yaml";
    auto command = svc["command"].as<std::vector<std::string>>();
    command.resize(3);
    EXPECT_EQ(command, (std::vector<std::string>{"node", "--config", config}));
    try {
      const auto n = node::NodeConfig::from_yaml(slurp(kDeploy / "sites" / (id + ".yaml")), "deploy/sites/" + id + ".yaml");
      EXPECT_EQ(n.id, id);
      EXPECT_EQ(n.orchestrator.host, "orchestrator") << "the compose service";
      EXPECT_EQ(n.orchestrator.port, r.c.listen.port);
      EXPECT_EQ(n.pki, mounted_secret(svc, id, "sites/" + id));
      EXPECT_TRUE(named_volume_at(svc, n.dir)) << id << "'s dir: is not a volume of its own";
      shards.insert(n.shard);
      expect_site_fits_run(n, r, id);
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }
  EXPECT_EQ(shards, (std::set<int>{0, 1, 2}));
  for (const auto& s : compose["secrets"]) {
    EXPECT_TRUE(used_secrets.count(s.first.Scalar())) << "secret " << s.first.Scalar() << " is mounted nowhere";
    EXPECT_EQ(str(s.second["file"]).find("/ca"), std::string::npos) << "the CA's folder (its key) is mounted nowhere";
  }
}

// --- the image ------------------------------------------------------------------------------------

TEST(Deploy, ContainerfileBakesInNoSecretAndRunsAsAUser) {
  // Instructions, continuation lines joined, comments dropped.
  std::vector<std::string> lines;
  {
    std::istringstream in(std::regex_replace(slurp(kDeploy / "Containerfile"), std::regex("\\\\\n"), " "));
    for (std::string l; std::getline(in, l);)
      if (!std::regex_match(l, std::regex(R"(\s*(#.*)?)"))) lines.push_back(l);
  }
  int froms = 0;
  std::string entrypoint, runtime;  // runtime: the last stage's instructions
  std::smatch m;
  for (const auto& l : lines) {
    if (std::regex_match(l, std::regex(R"(\s*FROM\s.*)"))) {
      ++froms;
      runtime.clear();
      entrypoint.clear();
    }
    runtime += l + "\n";
    if (std::regex_match(l, m, std::regex(R"(\s*ENTRYPOINT\s+(.*))"))) entrypoint = m[1];
    if (!std::regex_match(l, m, std::regex(R"(\s*(COPY|ADD)\s+(.*))"))) continue;
    std::istringstream args(m[2].str());
    std::vector<std::string> words;
    for (std::string w; args >> w;)
      if (w.rfind("--", 0) != 0) words.push_back(w);
    ASSERT_GE(words.size(), 2u) << l;
    for (std::size_t i = 0; i + 1 < words.size(); ++i) {
      const std::string& src = words[i];
      EXPECT_FALSE(src == "." || src == "./" || src == "deploy" || src == "deploy/" || src == "*") << "copies the whole context: " << l;
      EXPECT_EQ(src.find("secret"), std::string::npos) << l;
      EXPECT_EQ(src.find(".pem"), std::string::npos) << l;
      EXPECT_EQ(src.find("key"), std::string::npos) << l;
      if (l.find("--from=") == std::string::npos) {
        EXPECT_TRUE(fs::exists(fs::path(GNG_SOURCE_DIR) / src)) << "the build context has no " << src;
      }
    }
  }
  EXPECT_GE(froms, 2) << "a build stage and a runtime stage";
  EXPECT_NE(entrypoint.find("gng"), std::string::npos) << "ENTRYPOINT gng";
  EXPECT_GT(image_uid(), 0) << "the runtime stage runs as a non-root USER";
  // The runtime stage: the packages gng links and the embedded default's data; OpenSSL where the rpath says.
  for (const char* p : {"libtorch1.13", "libopenblas0-openmp", "libyaml-cpp0.7", "libprotobuf32", "libsqlite3-0", "zlib1g",
                        "libcpp-httplib0.11", "libnlopt0", "dataset-fashion-mnist"})
    EXPECT_NE(runtime.find(p), std::string::npos) << "the runtime stage does not install " << p;
  const std::string all = slurp(kDeploy / "Containerfile");
  EXPECT_NE(all.find("GNG_CACHE=/opt/gng"), std::string::npos) << "setup.sh's OpenSSL prefix, the binary's rpath";
  EXPECT_NE(all.find("[/opt/gng/openssl/lib]"), std::string::npos) << "the build checks the rpath";
  EXPECT_NE(runtime.find("COPY --from=build"), std::string::npos);
}

TEST(Deploy, ScriptsParse) {
  for (const char* s : {"secrets.sh", "podman.sh", "k8s/enrol.sh"}) {
    const auto r = test::run("bash -n " + (kDeploy / s).string());
    EXPECT_EQ(r.status, 0) << s << ": " << r.out;
  }
  auto r = test::run("sh -n " + (kDeploy / "orchestrator.sh").string());
  EXPECT_EQ(r.status, 0) << r.out;
  const fs::path enrol = fs::temp_directory_path() / ("gng-deploy-enrol-" + std::to_string(getpid()) + ".sh");
  std::ofstream(enrol) << str(k8s().find("ConfigMap", "gng-site")["data"]["enrol.sh"]);
  r = test::run("sh -n " + enrol.string());
  EXPECT_EQ(r.status, 0) << "the site pods' enrol.sh: " << r.out;
  fs::remove(enrol);
}

// --- deploy/secrets.sh, with the gng binary ------------------------------------------------------

std::string fingerprint_of(const fs::path& dir, const std::string& id) {
  return secure::load_identity(dir.string(), id).cert.public_key().fingerprint();
}

TEST(Deploy, SecretsShMakesWhatComposeMountsAndNoSiteKeyLeavesItsFolder) {
  const fs::path out = fs::temp_directory_path() / ("gng-deploy-secrets-" + std::to_string(getpid()));
  fs::remove_all(out);
  // The sites of the compose file.
  std::string sites;
  for (const auto& s : YAML::LoadFile((kDeploy / "compose.yaml").string())["services"])
    if (s.first.Scalar() != "orchestrator") sites += (sites.empty() ? "" : " ") + s.first.Scalar();
  const std::string script = "GNG=" + std::string(GNG_BINARY) + " bash " + (kDeploy / "secrets.sh").string() + " --out " +
                             out.string() + " --uid " + std::to_string(getuid()) + " --sites '" + sites + "'";
  auto r = test::run(script);
  ASSERT_EQ(r.status, 0) << r.out;

  // Every folder the compose file mounts is there.
  for (const auto& s : YAML::LoadFile((kDeploy / "compose.yaml").string())["secrets"]) {
    const std::string file = str(s.second["file"]);
    EXPECT_TRUE(fs::is_directory(out / file.substr(file.find("}/") + 2))) << file;
  }
  // The orchestrator: its identity, for every name a site dials it by; no CA key.
  const fs::path orch = out / "orchestrator";
  try {
    const auto me = secure::load_identity(orch.string(), "orchestrator");
    EXPECT_EQ(me.role(), "orchestrator");
    for (const char* host : {"orchestrator", "orchestrator.gng.svc", "orchestrator.gng.svc.cluster.local", "localhost"})
      EXPECT_EQ(X509_check_host(me.cert.get(), host, 0, 0, nullptr), 1) << host;
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
  }
  EXPECT_FALSE(fs::exists(orch / "ca.key.pem"));
  EXPECT_FALSE(fs::exists(out / "ca/issued/orchestrator.key.pem")) << "the orchestrator's key is moved, not copied";

  // Each site: its own key, certified as a node by the CA; the key's bytes are nowhere else.
  std::map<std::string, std::string> keys;  // path → contents
  for (const auto& e : fs::recursive_directory_iterator(out))
    if (e.is_regular_file()) keys[e.path().string()] = slurp(e.path());
  std::istringstream ids(sites);
  const secure::TrustStore trust = secure::TrustStore::load(orch.string());
  for (std::string id; ids >> id;) {
    const fs::path dir = out / "sites" / id, key = dir / "issued" / (id + ".key.pem");
    try {
      const auto site = secure::load_identity(dir.string(), id);
      EXPECT_EQ(site.role(), "node") << id;
      trust.check(site.cert);
    } catch (const std::exception& e) {
      ADD_FAILURE() << id << ": " << e.what();
    }
    EXPECT_EQ(slurp(dir / "ca.pem"), slurp(out / "ca/ca.pem")) << id;
    for (const auto& [path, text] : keys) {
      if (path != key.string()) {
        EXPECT_EQ(text.find(slurp(key)), std::string::npos) << id << "'s key is also in " << path;
      }
    }
  }

  // Again: nothing new is made.
  const std::string first = sites.substr(0, sites.find(' ')), last = sites.substr(sites.rfind(' ') + 1);
  const std::string before = fingerprint_of(out / "sites" / first, first);
  r = test::run(script);
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(fingerprint_of(out / "sites" / first, first), before);
  EXPECT_EQ(slurp(orch / "issued/orchestrator.key.pem"), keys[(orch / "issued/orchestrator.key.pem").string()]);

  // A denial reaches the orchestrator's and every site's crl.pem.
  r = test::run(script + " --deny " + last);
  EXPECT_EQ(r.status, 0) << r.out;
  const secure::TrustStore now = secure::TrustStore::load(orch.string());
  EXPECT_THROW(now.check(secure::load_identity((out / "sites" / last).string(), last).cert), Error);
  EXPECT_NO_THROW(now.check(secure::load_identity((out / "sites" / first).string(), first).cert));
  EXPECT_EQ(slurp(out / "sites" / first / "crl.pem"), slurp(out / "ca/crl.pem"));

  r = test::run(script + " --no-such-option");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("unknown argument '--no-such-option'"), std::string::npos) << r.out;
  fs::remove_all(out);
}

}  // namespace
}  // namespace gng
