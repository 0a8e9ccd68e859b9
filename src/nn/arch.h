#pragma once
// Internal to src/nn: a design's architecture, read once with defaults and checked.
#include <string>

#include "space/space.h"

namespace gng {

struct CnnArch {
  int depth, width, kernel, heads, hidden;
  bool batch_norm, residual, attention;
  double dropout;
  std::string activation;
};
struct VitArch {
  int patch, width, depth, heads, mlp_ratio;
  double dropout;
  std::string activation;
};

CnnArch cnn_arch(const Design& d);
VitArch vit_arch(const Design& d);
void check_activation(const std::string& act);

}  // namespace gng
