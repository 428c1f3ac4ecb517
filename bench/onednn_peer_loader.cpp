// onednn_peer_loader.cpp: finds, opens and checks the oneDNN peer module, and forwards
// OnednnPeer's calls through its C interface. See onednn_peer_loader.hpp.
#include "bench/onednn_peer_loader.hpp"

#include <dlfcn.h>

#include <fmt/format.h>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "bench/onednn_peer.h"

namespace cnnc::bench {

namespace {

// The module's table, checked: throws OnednnUnsupported with the reason it cannot be used.
const cnnc_onednn_peer_api& open_module() {
  std::optional<std::string> path = OnednnPeer::module_path();
  if (!path)
    throw OnednnUnsupported("cnnc was built without oneDNN (install libdnnl-dev and reconfigure)");
  // dlopen counts references: opening an open module again returns it. RTLD_LOCAL keeps
  // oneDNN's and OpenMP's symbols out of cnnc's namespace.
  void* module = dlopen(path->c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!module) throw OnednnUnsupported(fmt::format("cannot load the oneDNN peer: {}", dlerror()));
  auto entry = reinterpret_cast<cnnc_onednn_peer_entry>(dlsym(module, CNNC_ONEDNN_PEER_ENTRY));
  if (!entry)
    throw OnednnUnsupported(fmt::format("{} is not a oneDNN peer module: {}", *path, dlerror()));
  const cnnc_onednn_peer_api* api = entry();
  if (api->version != CNNC_ONEDNN_PEER_VERSION || api->abi_version != CNNC_ABI_VERSION)
    throw OnednnUnsupported(fmt::format(
        "{} has interface version {} (C ABI {}), this cnnc needs {} (C ABI {}): rebuild both "
        "from one tree",
        *path, api->version, api->abi_version, CNNC_ONEDNN_PEER_VERSION, CNNC_ABI_VERSION));
  return *api;
}

}  // namespace

std::optional<std::string> OnednnPeer::module_path() {
  if (const char* env = std::getenv("CNNC_ONEDNN_PEER"); env && *env) return env;
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return std::nullopt;
  std::filesystem::path module = exe.parent_path() / kModuleName;
  if (!std::filesystem::exists(module, ec)) return std::nullopt;
  return module.string();
}

OnednnPeer::OnednnPeer(const cnnc_model& model, int32_t batch, int threads) : api_(&open_module()) {
  const char* error = nullptr;
  int32_t status = api_->create(&model, batch, threads, &net_, &error);
  if (status == CNNC_ONEDNN_UNSUPPORTED) throw OnednnUnsupported(error);
  if (status != CNNC_ONEDNN_OK) throw std::runtime_error(fmt::format("oneDNN: {}", error));
}

OnednnPeer::~OnednnPeer() {
  api_->destroy(net_);
}

void OnednnPeer::check(int32_t status) const {
  if (status != CNNC_ONEDNN_OK)
    throw std::runtime_error(fmt::format("oneDNN: {}", api_->error(net_)));
}

void OnednnPeer::set_params(const float* params) {
  check(api_->set_params(net_, params));
}

float OnednnPeer::train_step(const float* images, const int32_t* labels, const cnnc_optimizer& opt,
                             uint32_t epoch, uint32_t sample_base, uint64_t seed) {
  float loss = 0;
  check(api_->train_step(net_, images, labels, &opt, epoch, sample_base, seed, &loss));
  return loss;
}

void OnednnPeer::forward(const float* images, float* outputs) {
  check(api_->forward(net_, images, outputs));
}

std::vector<OnednnImplementation> OnednnPeer::implementation_rows() const {
  const cnnc_onednn_row* rows = nullptr;
  int32_t count = api_->implementations(net_, &rows);
  std::vector<OnednnImplementation> out;
  for (int32_t i = 0; i < count; ++i)
    out.push_back({rows[i].layer, static_cast<Phase>(rows[i].phase), rows[i].primitive,
                   rows[i].implementation});
  return out;
}

}  // namespace cnnc::bench
