// c10d process group of this process. c10d's TCPStore is in every libtorch;
// ProcessGroupGloo needs Gloo's headers at build time (Debian: libgloo-dev) and
// ProcessGroupNCCL a CUDA libtorch with NCCL's headers: scripts/build-torch.ts
// defines USE_C10D_GLOO / USE_C10D_NCCL when it finds them.
#include "distributed.h"

#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <memory>

namespace normlab {
namespace {

/** The two collectives the trainer uses, over whichever c10d process group class (their base differs across PyTorch versions). */
class Group {
 public:
  virtual ~Group() = default;
  virtual void allReduceSum(at::Tensor& t) = 0;
  virtual void broadcast(at::Tensor& t, int root) = 0;
};

template <class ProcessGroup>
class GroupOf : public Group {
 public:
  explicit GroupOf(c10::intrusive_ptr<ProcessGroup> pg) : pg_(std::move(pg)) {}
  void allReduceSum(at::Tensor& t) override {
    std::vector<at::Tensor> tensors{t};
    pg_->allreduce(tensors)->wait();
  }
  void broadcast(at::Tensor& t, int root) override {
    std::vector<at::Tensor> tensors{t};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    pg_->broadcast(tensors, options)->wait();
  }

 private:
  c10::intrusive_ptr<ProcessGroup> pg_;
};

struct Session {
  c10::intrusive_ptr<c10d::Store> store;
  std::unique_ptr<Group> group;
  c10::Device device = c10::Device(c10::DeviceType::CPU);
};
std::unique_ptr<Session> session;

Session& current() {
  TORCH_CHECK(session != nullptr, "no c10d process group: data parallel was not initialized in this process");
  return *session;
}

bool isLoopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

#ifdef USE_C10D_GLOO
std::unique_ptr<Group> glooGroup(const c10::intrusive_ptr<c10d::Store>& store, const GroupOptions& o) {
  auto options = c10d::ProcessGroupGloo::Options::create(o.timeout);
  // GLOO_SOCKET_IFNAME as torch.distributed honours it; a local group stays on loopback.
  const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
  options->devices.push_back(iface != nullptr && *iface != '\0' ? c10d::ProcessGroupGloo::createDeviceForInterface(iface)
                             : isLoopback(o.masterAddr)        ? c10d::ProcessGroupGloo::createDeviceForHostname(o.masterAddr)
                                                               : c10d::ProcessGroupGloo::createDefaultDevice());
  return std::make_unique<GroupOf<c10d::ProcessGroupGloo>>(
      c10::make_intrusive<c10d::ProcessGroupGloo>(store, o.rank, o.worldSize, options));
}
#endif

#ifdef USE_C10D_NCCL
std::unique_ptr<Group> ncclGroup(const c10::intrusive_ptr<c10d::Store>& store, const GroupOptions& o) {
  // Blocking waits make a collective that outlives the timeout throw here, instead of
  // hanging or aborting the process from NCCL's watchdog thread. (Both spellings: PyTorch 1.x and 2.x.)
  setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
  setenv("NCCL_BLOCKING_WAIT", "1", 0);
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = o.timeout;
  return std::make_unique<GroupOf<c10d::ProcessGroupNCCL>>(
      c10::make_intrusive<c10d::ProcessGroupNCCL>(store, o.rank, o.worldSize, options));
}
#endif

std::unique_ptr<Group> makeGroup(const c10::intrusive_ptr<c10d::Store>& store, const GroupOptions& o) {
#ifdef USE_C10D_GLOO
  if (o.backend == "gloo") return glooGroup(store, o);
#endif
#ifdef USE_C10D_NCCL
  if (o.backend == "nccl") return ncclGroup(store, o);
#endif
  TORCH_CHECK(false, "this build of the torch addon has no c10d ", o.backend == "nccl" ? "NCCL" : "Gloo",
              " process group (", o.backend == "nccl" ? "it needs a CUDA libtorch with NCCL's headers, nccl.h"
                                                      : "Gloo's headers were not found when it was built: apt-get install libgloo-dev",
              "), so data parallel cannot run; rebuild it with: npm run install");
}

/** One contiguous buffer of the inputs, so a step takes one collective whatever the parameter count. */
at::Tensor flatten(const Tensors& in) {
  TORCH_CHECK(!in.empty(), "no tensors to reduce");
  std::vector<at::Tensor> flat;
  flat.reserve(in.size());
  for (const auto& t : in) {
    TORCH_CHECK(t.scalar_type() == at::kFloat, "collectives take float32 tensors, not ", t.scalar_type());
    flat.push_back(t.reshape(-1));
  }
  return at::cat(flat).to(current().device);
}

Tensors unflatten(const at::Tensor& flat, const Tensors& like) {
  std::vector<int64_t> sizes;
  for (const auto& t : like) sizes.push_back(t.numel());
  Tensors parts = flat.split_with_sizes(sizes);
  for (size_t i = 0; i < parts.size(); ++i) parts[i] = parts[i].view(like[i].sizes());
  return parts;
}

}  // namespace

std::vector<std::string> c10dBackends() {
  std::vector<std::string> names;
#ifdef USE_C10D_GLOO
  names.push_back("gloo");
#endif
#ifdef USE_C10D_NCCL
  names.push_back("nccl");
#endif
  return names;
}

void initGroup(const GroupOptions& o) {
  TORCH_CHECK(session == nullptr, "the c10d process group is already initialized");
  TORCH_CHECK(o.worldSize >= 1 && o.rank >= 0 && o.rank < o.worldSize, "rank ", o.rank, " is not in a world of ", o.worldSize);
  TORCH_CHECK(o.masterPort > 0 && o.masterPort < 65536, "master port ", o.masterPort, " is not a TCP port");
  c10d::TCPStoreOptions storeOptions;
  storeOptions.port = static_cast<uint16_t>(o.masterPort);
  storeOptions.isServer = o.rank == 0;
  storeOptions.numWorkers = o.worldSize;
  storeOptions.waitWorkers = true;
  storeOptions.timeout = o.timeout;
  auto next = std::make_unique<Session>();
  next->device = currentDevice();
  next->store = c10::make_intrusive<c10d::TCPStore>(o.masterAddr, storeOptions);
  next->group = makeGroup(next->store, o);
  session = std::move(next);
}

void barrier() {
  // A one-number all-reduce on the rank's own device (ProcessGroupNCCL's barrier guesses the device).
  at::Tensor one = at::ones({1}, at::TensorOptions().dtype(at::kFloat).device(current().device));
  current().group->allReduceSum(one);
}

void destroyGroup() { session.reset(); }

Tensors allReduceSum(const Tensors& in, const Attrs&) {
  at::Tensor flat = flatten(in);
  current().group->allReduceSum(flat);
  return unflatten(flat, in);
}

Tensors broadcastFrom(const Tensors& in, const Attrs& a) {
  at::Tensor flat = flatten(in);
  current().group->broadcast(flat, static_cast<int>(a.integer(0)));
  return unflatten(flat, in);
}

}  // namespace normlab
