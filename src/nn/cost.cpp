// Analytic parameter and FLOP counts of the two families, without libtorch (the search space's
// budgets are checked on thousands of designs). tests/nn checks them against the built modules.
#include <cmath>

#include "core/error.h"
#include "nn/arch.h"
#include "nn/nn.h"

namespace gng {

InputShape shape_of(const Dataset& d) {
  return {static_cast<int>(d.channels), static_cast<int>(d.height), static_cast<int>(d.width), d.classes};
}

CnnArch cnn_arch(const Design& d) {
  CnnArch a;
  a.depth = static_cast<int>(d.number("depth", 1));
  a.width = static_cast<int>(d.number("width", 32));
  a.kernel = static_cast<int>(d.number("kernel", 3));
  a.batch_norm = d.flag("batch_norm");
  a.residual = d.flag("residual");
  a.attention = d.flag("attention");
  a.heads = a.attention ? static_cast<int>(d.number("heads", 1)) : 0;
  a.hidden = static_cast<int>(d.number("hidden", 0));
  a.dropout = d.number("dropout", 0);
  a.activation = d.text("activation", "relu");
  if (a.depth < 1 || a.depth > 5) throw Error("cnn: depth must be 1..5, got " + std::to_string(a.depth));
  if (a.width < 1 || a.kernel < 1 || a.kernel % 2 == 0 || a.hidden < 0)
    throw Error("cnn: width must be >= 1, kernel odd and hidden >= 0");
  const int last = a.width << (a.depth - 1);
  if (a.attention && (a.heads < 1 || last % a.heads)) {
    throw Error("cnn: attention heads " + std::to_string(a.heads) + " must divide the last stage's " +
                std::to_string(last) + " channels");
  }
  return a;
}

VitArch vit_arch(const Design& d) {
  VitArch a;
  a.patch = static_cast<int>(d.number("patch", 7));
  a.width = static_cast<int>(d.number("width", 64));
  a.depth = static_cast<int>(d.number("depth", 2));
  a.heads = static_cast<int>(d.number("heads", 2));
  a.mlp_ratio = static_cast<int>(d.number("mlp_ratio", 2));
  a.dropout = d.number("dropout", 0);
  a.activation = d.text("activation", "gelu");
  if (a.patch < 1 || a.width < 1 || a.depth < 1 || a.mlp_ratio < 1) throw Error("vit: patch, width, depth, mlp_ratio must be >= 1");
  if (a.heads < 1 || a.width % a.heads) {
    throw Error("vit: heads " + std::to_string(a.heads) + " must divide width " + std::to_string(a.width));
  }
  return a;
}

void check_activation(const std::string& act) {
  if (act != "relu" && act != "gelu" && act != "silu") throw Error("unknown activation '" + act + "' (relu, gelu, silu)");
}

std::map<std::string, double> design_cost(const std::string& family, const Design& d, const InputShape& in) {
  double params = 0, flops = 0;
  // Multi-head attention over t tokens of width e: in-projection 3e² + 3e, out-projection e² + e;
  // products QKᵀ and AV: 2 t² e multiply-adds.
  auto attention = [&](double t, double e) {
    params += 4 * e * e + 4 * e;
    flops += 2 * (4 * t * e * e + 2 * t * t * e);
  };
  if (family == "cnn") {
    const CnnArch a = cnn_arch(d);
    check_activation(a.activation);
    double c_in = in.channels, h = in.height, w = in.width;
    auto conv = [&](double from, double c) {  // same padding, stride 1
      params += from * c * a.kernel * a.kernel + (a.batch_norm ? 2 * c : c);
      flops += 2 * from * c * a.kernel * a.kernel * h * w;
    };
    for (int s = 0; s < a.depth; ++s) {
      const double c = static_cast<double>(a.width) * std::pow(2.0, s);
      conv(c_in, c);
      if (a.residual) conv(c, c);
      c_in = c;
      h = std::floor(h / 2), w = std::floor(w / 2);
      if (h < 1 || w < 1) throw Error("cnn: depth " + std::to_string(a.depth) + " pools the input below 1 pixel");
    }
    if (a.attention) {
      params += 2 * c_in;  // layer norm
      attention(h * w, c_in);
    }
    double features = c_in * h * w;  // the classifier sees every position
    if (a.hidden > 0) {
      params += features * a.hidden + a.hidden;
      flops += 2 * features * a.hidden;
      features = a.hidden;
    }
    params += features * in.classes + in.classes;
    flops += 2 * features * in.classes;
  } else if (family == "vit") {
    const VitArch a = vit_arch(d);
    check_activation(a.activation);
    if (in.height % a.patch || in.width % a.patch) {
      throw Error("vit: patch " + std::to_string(a.patch) + " does not tile a " + std::to_string(in.height) + "x" +
                  std::to_string(in.width) + " input");
    }
    const double e = a.width, t = static_cast<double>(in.height / a.patch) * (in.width / a.patch);
    const double pp = a.patch * a.patch, m = a.mlp_ratio * e;
    params += in.channels * e * pp + e + t * e;  // patch embedding, positions
    flops += 2 * in.channels * e * pp * t;
    for (int b = 0; b < a.depth; ++b) {
      params += 4 * e;  // two layer norms
      attention(t, e);
      params += e * m + m + m * e + e;
      flops += 2 * 2 * t * e * m;
    }
    params += 2 * e + e * in.classes + in.classes;
    flops += 2 * e * in.classes;
  } else {
    throw Error("unknown model family '" + family + "' (cnn, vit)");
  }
  return {{"params", params}, {"flops", flops}};
}

}  // namespace gng
