// Data parallel over PyTorch's c10d (distributed.cc): one process group per
// process, rendezvous through a TCPStore, Gloo on the CPU and NCCL on CUDA where
// this build has them. JS side: src/distributed/.
#pragma once
#include <chrono>
#include <string>
#include <vector>

#include "kernels.h"

namespace normlab {

struct GroupOptions {
  /** 'gloo' or 'nccl'. */
  std::string backend;
  int rank = 0;
  int worldSize = 1;
  std::string masterAddr;
  int masterPort = 0;
  /** Rendezvous and every collective: a rank that is gone or stuck fails the others after this. */
  std::chrono::milliseconds timeout{0};
};

/** The process-group backends this build has ('gloo', 'nccl'). */
std::vector<std::string> c10dBackends();

void initGroup(const GroupOptions& options);
void barrier();
void destroyGroup();

/** Kernels: the inputs summed over every rank (one flat buffer, one all-reduce), and rank `root`'s inputs on every rank. */
Tensors allReduceSum(const Tensors& in, const Attrs& a);
Tensors broadcastFrom(const Tensors& in, const Attrs& a);

}  // namespace normlab
