// PyTorch as a peer of cnnc bench: bench/peers/pytorch_mnist.py in a child process that stays
// alive (so that its timings interleave with cnnc's), spoken to in JSON lines, and what the
// script needs to build the same network: the checked layer table as JSON.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cnnc_abi.h"
#include "dsl/graph.hpp"

namespace cnnc::bench {

// The script's directory: $CNNC_PEERS_DIR, else bench/peers of the source tree cnnc was built
// from.
std::string peers_dir();

// The interpreter that has torch: $CNNC_PYTHON, else /usr/bin/python3 (Debian's python3-torch
// installs there, not for a pyenv or venv python that may come first on the PATH).
std::string default_python();

// The network and its training settings for pytorch_mnist.py: the layer table of `model` (the
// rows of cnnc_abi.h, so the script needs no .cnn parser), the file's optimizer, schedule, loss,
// seed, epochs and precision (bf16: the script runs torch.autocast's bfloat16), and the batch and
// threads of this run.
nlohmann::json peer_config(const dsl::Graph& g, const cnnc_model& model, int32_t batch,
                           int threads);

// One line of the peer's output as JSON; throws std::runtime_error naming the line when it is not.
nlohmann::json parse_reply(const std::string& line);

// A child process spoken to in lines: stdin and stdout are pipes, stderr is cnnc's.
class LineProcess {
 public:
  // Throws std::runtime_error when the program cannot be started. env: extra NAME=value entries.
  LineProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env);
  ~LineProcess();  // closes stdin, waits for the child
  LineProcess(const LineProcess&) = delete;
  LineProcess& operator=(const LineProcess&) = delete;

  void send(const std::string& line);    // a newline is appended
  std::optional<std::string> receive();  // the next line, nullopt at end of output

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buffered_;
};

// The environment of a peer: its BLAS single-threaded (OpenBLAS threads otherwise fight torch's
// own for the cores) and OpenMP at `threads`; OMP_WAIT_POLICY set to `wait_policy` unless it is
// empty or "default", the name a peer reports when it is unset (then the caller's environment
// decides), so that a PeerSetting's wait_policy starts a process like the one it came from.
std::vector<std::string> peer_environment(int threads, const std::string& wait_policy = "");

// What a PyTorch process runs under, as its config reply says, and what it reached with it.
struct PeerSetting {
  int threads = 0;
  std::string wait_policy;  // the OMP_WAIT_POLICY it started under: "passive", "default" ...
  std::string blas;         // the library torch's dense layers run on
  std::string memory_format = "nchw";  // or "channels_last": the network's and the batch's
  bool bf16 = false;                   // the forward pass under torch.autocast's bfloat16
  double train_ips = 0;                // median of the calibration windows
  std::string str() const;  // "2 threads, OMP_WAIT_POLICY=passive, channels_last, autocast bf16"
};

// The OMP_WAIT_POLICY values tried for the peer: the caller's own if OMP_WAIT_POLICY is set,
// else "" (libgomp's default: spin briefly, then sleep) and "passive". Not "active": its idle
// workers spin for minutes after each window, taking a core from the engine timed next.
std::vector<std::string> wait_policy_candidates();

// The batch a calibration window trains on: the same files `load` reads.
struct PeerBatch {
  const std::vector<float>& params;
  const std::vector<float>& images;  // [n][H][W][C]
  const std::vector<int32_t>& labels;
};

// PyTorch in `serve` mode. start() returns null and says why (no interpreter, no torch, a layer
// the script cannot build) in `why`: cnnc bench then goes on without it.
class PytorchPeer {
 public:
  static std::unique_ptr<PytorchPeer> start(const std::string& python, const nlohmann::json& config,
                                            int threads, std::string& why,
                                            const std::string& wait_policy = "");
  // PyTorch at its best on this machine: one process per setting of the threads (1..max_threads)
  // and wait_policy_candidates(), each timed in both memory formats (NCHW and channels-last),
  // all loaded with `batch` and timed in turn, `rounds` training windows of `seconds` each;
  // keeps the process and format with the highest median and ends the others. Prints one line
  // with every setting's rate and the one kept. config(threads) gives the JSON, whose precision
  // the search keeps.
  static std::unique_ptr<PytorchPeer> start_best(const std::string& python,
                                                 const std::function<nlohmann::json(int)>& config,
                                                 int max_threads, const PeerBatch& batch,
                                                 std::string& why, int rounds = 3,
                                                 double seconds = 0.3);
  ~PytorchPeer();

  // One command line, one JSON reply line; throws std::runtime_error on an error reply or when
  // the process ended.
  nlohmann::json command(const std::string& line);
  const std::string& version() const { return version_; }
  // The threads, OMP_WAIT_POLICY and BLAS from the config reply (train_ips after start_best).
  const PeerSetting& setting() const { return setting_; }
  // A private directory for the files the commands exchange (params, batch, outputs).
  const std::string& dir() const { return dir_; }

 private:
  PytorchPeer() = default;
  std::unique_ptr<LineProcess> process_;
  std::string version_, dir_;
  PeerSetting setting_;
};

// Writes floats or int32s to a file; throws std::runtime_error when it cannot.
void write_binary(const std::string& path, const void* data, size_t bytes);
std::vector<float> read_floats(const std::string& path);

}  // namespace cnnc::bench
