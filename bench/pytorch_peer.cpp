// PyTorch as a peer of cnnc bench: the child process, its line protocol and the JSON it reads.
#include "bench/pytorch_peer.hpp"

#include "bench/timing.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

extern char** environ;

namespace cnnc::bench {

std::string peers_dir() {
  if (const char* d = std::getenv("CNNC_PEERS_DIR"); d && *d) return d;
  return CNNC_PEERS_DIR;
}

std::string default_python() {
  if (const char* p = std::getenv("CNNC_PYTHON"); p && *p) return p;
  return "/usr/bin/python3";
}

nlohmann::json peer_config(const dsl::Graph& g, const cnnc_model& m, int32_t batch, int threads) {
  nlohmann::json layers = nlohmann::json::array();
  for (int32_t i = 0; i < m.layer_count; ++i) {
    const cnnc_layer& l = m.layers[i];
    layers.push_back({{"name", l.name},
                      {"kind", l.kind},
                      {"activation", l.activation},
                      {"in", {l.in_h, l.in_w, l.in_c}},
                      {"out", {l.out_h, l.out_w, l.out_c}},
                      {"kernel", {l.kernel_h, l.kernel_w}},
                      {"stride", {l.stride_h, l.stride_w}},
                      {"pad", {l.pad_top, l.pad_left, l.pad_bottom, l.pad_right}},
                      {"rate", l.dropout_rate},
                      {"weight_offset", l.weight_offset},
                      {"weight_count", l.weight_count},
                      {"bias_offset", l.bias_offset},
                      {"bias_count", l.bias_count},
                      {"trainable", l.trainable}});
  }
  const dsl::Training& t = g.training;
  const dsl::Optimizer& o = t.optimizer;
  return {{"model", g.name},
          {"input", {m.input_h, m.input_w, m.input_c}},
          {"loss", m.loss},
          {"batch", batch},
          {"threads", threads},
          {"precision", dsl::name_of(t.precision)},
          {"seed", t.seed},
          {"epochs", t.epochs},
          {"optimizer",
           {{"kind", o.kind == dsl::OptimizerKind::adam ? CNNC_ADAM : CNNC_SGD},
            {"lr", o.lr},
            {"momentum", o.momentum},
            {"beta1", o.beta1},
            {"beta2", o.beta2},
            {"eps", o.eps},
            {"weight_decay", o.weight_decay}}},
          {"schedule",
           {{"kind", dsl::name_of(t.schedule.kind)},
            {"every", t.schedule.every},
            {"gamma", t.schedule.gamma},
            {"warmup", t.schedule.warmup}}},
          {"param_count", m.param_count},
          {"layers", layers}};
}

nlohmann::json parse_reply(const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw std::runtime_error(fmt::format("the PyTorch peer printed '{}', not a JSON object", line));
  return j;
}

LineProcess::LineProcess(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    throw std::runtime_error("pipe failed");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);

  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string entry = *e;
    bool replaced = false;
    for (const std::string& x : env)
      replaced = replaced || entry.compare(0, x.find('=') + 1, x, 0, x.find('=') + 1) == 0;
    if (!replaced) envs.push_back(entry);
  }
  envs.insert(envs.end(), env.begin(), env.end());
  std::vector<char*> args, envp;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const std::string& e : envs) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  int rc = posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    throw std::runtime_error(fmt::format("cannot run {}: {}", argv[0], std::strerror(rc)));
  }
  to_ = in[1];
  from_ = out[0];
  // A child that died must not kill cnnc with SIGPIPE on the next send.
  std::signal(SIGPIPE, SIG_IGN);
}

LineProcess::~LineProcess() {
  if (to_ >= 0) close(to_);
  if (from_ >= 0) close(from_);
  if (pid_ > 0) {
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

void LineProcess::send(const std::string& line) {
  std::string s = line + "\n";
  const char* p = s.data();
  size_t left = s.size();
  while (left > 0) {
    ssize_t n = write(to_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("the peer process stopped reading");
    p += n;
    left -= static_cast<size_t>(n);
  }
}

std::optional<std::string> LineProcess::receive() {
  for (;;) {
    size_t nl = buffered_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return line;
    }
    char buf[4096];
    ssize_t n = read(from_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (buffered_.empty()) return std::nullopt;
      std::string line;
      line.swap(buffered_);
      return line;
    }
    buffered_.append(buf, static_cast<size_t>(n));
  }
}

std::vector<std::string> peer_environment(int threads, const std::string& wait_policy) {
  std::vector<std::string> env = {"OPENBLAS_NUM_THREADS=1", "MKL_NUM_THREADS=1",
                                  fmt::format("OMP_NUM_THREADS={}", threads),
                                  "PYTHONDONTWRITEBYTECODE=1"};
  // glibc's malloc otherwise maps each large activation afresh and gives it back on free, so
  // every step page-faults its tensors in again: lenet5 inference at batch 1,000 ran at 4,655
  // images/s against 40,592 kept, and keras_mnist trained 1.6x slower at batch 64
  // (docs/benchmarks.md). Keeping freed memory is what tcmalloc, which PyTorch's CPU tuning
  // guide advises, does too.
  for (const char* keep : {"MALLOC_MMAP_THRESHOLD_=4294967296",
                           "MALLOC_TRIM_THRESHOLD_=68719476736", "MALLOC_TOP_PAD_=1073741824"})
    env.push_back(keep);
  if (!wait_policy.empty() && wait_policy != "default")
    env.push_back("OMP_WAIT_POLICY=" + wait_policy);
  return env;
}

std::string PeerSetting::str() const {
  return fmt::format("{} thread{}, OMP_WAIT_POLICY={}, {}{}", threads, threads == 1 ? "" : "s",
                     wait_policy, memory_format, bf16 ? ", autocast bf16" : "");
}

std::vector<std::string> wait_policy_candidates() {
  if (const char* w = std::getenv("OMP_WAIT_POLICY"); w && *w) return {""};
  return {"", "passive"};
}

std::unique_ptr<PytorchPeer> PytorchPeer::start(const std::string& python,
                                                const nlohmann::json& config, int threads,
                                                std::string& why, const std::string& wait_policy) {
  if (access(python.c_str(), X_OK) != 0) {
    why = fmt::format("{} is not an executable interpreter (set CNNC_PYTHON or --python)", python);
    return nullptr;
  }
  std::string script = peers_dir() + "/pytorch_mnist.py";
  if (access(script.c_str(), R_OK) != 0) {
    why = fmt::format("{} not found (set CNNC_PEERS_DIR)", script);
    return nullptr;
  }
  std::unique_ptr<PytorchPeer> p(new PytorchPeer());
  char tmpl[] = "/tmp/cnnc-bench-pytorch.XXXXXX";
  if (!mkdtemp(tmpl)) {
    why = "cannot create a temporary directory";
    return nullptr;
  }
  p->dir_ = tmpl;
  try {
    p->process_ = std::make_unique<LineProcess>(std::vector<std::string>{python, script, "serve"},
                                                peer_environment(threads, wait_policy));
    std::optional<std::string> hello = p->process_->receive();
    if (!hello) {
      why = "the script ended without a word";
      return nullptr;
    }
    nlohmann::json h = parse_reply(*hello);
    if (h.contains("error")) {
      why = h["error"].get<std::string>();
      return nullptr;
    }
    p->version_ = h.value("torch", "?");
    std::string cfg = p->dir_ + "/config.json", text = config.dump();
    write_binary(cfg, text.data(), text.size());
    nlohmann::json r = p->command("config " + cfg);
    p->setting_.threads = r.value("threads", threads);
    p->setting_.wait_policy = r.value("omp_wait_policy", "?");
    p->setting_.blas = r.value("blas", "?");
    p->setting_.bf16 = config.value("precision", "fp32") == "bf16";
  } catch (const std::runtime_error& e) {
    why = e.what();
    return nullptr;
  }
  return p;
}

std::unique_ptr<PytorchPeer> PytorchPeer::start_best(
    const std::string& python, const std::function<nlohmann::json(int)>& config, int max_threads,
    const PeerBatch& batch, std::string& why, int rounds, double seconds) {
  std::vector<std::unique_ptr<PytorchPeer>> peers;
  for (const std::string& policy : wait_policy_candidates())
    for (int t = 1; t <= max_threads; ++t) {
      std::unique_ptr<PytorchPeer> p = start(python, config(t), t, why, policy);
      if (!p) return nullptr;  // the same reason would stop every setting
      const std::string& d = p->dir();
      write_binary(d + "/params.f32", batch.params.data(), batch.params.size() * sizeof(float));
      write_binary(d + "/images.f32", batch.images.data(), batch.images.size() * sizeof(float));
      write_binary(d + "/labels.i32", batch.labels.data(), batch.labels.size() * sizeof(int32_t));
      try {
        p->command("load " + d);
      } catch (const std::runtime_error& e) {
        why = e.what();
        return nullptr;
      }
      peers.push_back(std::move(p));
    }
  // A setting is a process and a memory format, which a process switches between windows.
  // Interleaved, as every timing in cnnc bench: the machine's drift hits every setting alike.
  const std::vector<std::string> formats = {"nchw", "channels_last"};
  std::vector<std::vector<double>> rates(peers.size() * formats.size());
  try {
    for (int r = 0; r < rounds; ++r)
      for (size_t i = 0; i < peers.size(); ++i)
        for (size_t f = 0; f < formats.size(); ++f) {
          peers[i]->command("format " + formats[f]);
          rates[i * formats.size() + f].push_back(
              peers[i]
                  ->command(fmt::format("train {} {}", seconds, seconds / 3))
                  .at("images_per_second")
                  .get<double>());
        }
  } catch (const std::exception& e) {  // an error reply, or a reply without the rate
    why = e.what();
    return nullptr;
  }
  size_t best = 0;
  std::vector<double> medians(rates.size());
  std::string line;
  for (size_t k = 0; k < rates.size(); ++k) {
    medians[k] = stats(rates[k]).median;
    if (medians[k] > medians[best]) best = k;
    PeerSetting tried = peers[k / formats.size()]->setting_;
    tried.memory_format = formats[k % formats.size()];
    line += fmt::format("{}{}: {:.0f}", k ? "; " : "", tried.str(), medians[k]);
  }
  fmt::print("pytorch: settings tried (training images/s, median of {} windows of {:g} s): {}\n",
             rounds, seconds, line);
  std::unique_ptr<PytorchPeer> kept = std::move(peers[best / formats.size()]);
  try {
    kept->command("format " + formats[best % formats.size()]);
  } catch (const std::runtime_error& e) {
    why = e.what();
    return nullptr;
  }
  kept->setting_.memory_format = formats[best % formats.size()];
  kept->setting_.train_ips = medians[best];
  const PeerSetting& s = kept->setting_;
  fmt::print("pytorch: kept {}; BLAS {}; glibc malloc keeps what it frees\n", s.str(), s.blas);
  if (s.blas.rfind("reference", 0) == 0)
    fmt::print(
        "pytorch: warning: torch runs its dense layers on the reference BLAS, about 20x slower "
        "than OpenBLAS (install libopenblas0-openmp: scripts/setup --peers)\n");
  return kept;  // the others quit as they go out of scope
}

PytorchPeer::~PytorchPeer() {
  if (process_) {
    try {
      process_->send("quit");
      process_->receive();
    } catch (const std::runtime_error&) {
      // it is gone already; the destructor of process_ reaps it
    }
  }
  process_.reset();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

nlohmann::json PytorchPeer::command(const std::string& line) {
  process_->send(line);
  std::optional<std::string> r = process_->receive();
  if (!r) throw std::runtime_error(fmt::format("the PyTorch process ended during '{}'", line));
  nlohmann::json reply = parse_reply(*r);
  if (reply.contains("error"))
    throw std::runtime_error(fmt::format("PyTorch: {}", reply["error"].get<std::string>()));
  return reply;
}

void write_binary(const std::string& path, const void* data, size_t bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!f) throw std::runtime_error(fmt::format("cannot write {}", path));
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error(fmt::format("cannot read {}", path));
  std::vector<float> v(static_cast<size_t>(f.tellg()) / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  return v;
}

}  // namespace cnnc::bench
