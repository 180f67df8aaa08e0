// One effect instance: its clips, its parameters, and what it learnt about its worker.
#pragma once

#include <mutex>
#include <string>

#include "host.h"

namespace rr_ofx {

// Script names of the parameters; their defaults are `rerender propagate`'s (see plugin.cpp).
namespace param {
constexpr const char* keyFrames = "keyFrames";
constexpr const char* blend = "blend";
constexpr const char* workingSize = "workingSize";
constexpr const char* flow = "flow";
constexpr const char* quality = "quality";
constexpr const char* poisson = "poisson";
constexpr const char* matteFeather = "matteFeather";
constexpr const char* cuts = "cuts";
constexpr const char* outputAlpha = "outputAlpha";
}  // namespace param

constexpr const char* kBlendOptions[] = {"soft", "select", "linear"};
constexpr const char* kFlowOptions[] = {"dis", "deepflow"};
constexpr const char* kQualityOptions[] = {"standard", "draft"};

// The parameter values of one render, as the worker's command line needs them.
struct Settings {
  std::string key_frames;
  std::string blend = "soft";
  int working_size = 0;
  std::string flow = "dis";
  std::string quality = "standard";
  bool poisson = false;
  double matte_feather = 0.0;
  std::string cuts;
  bool output_alpha = false;
};

struct Instance {
  OfxImageEffectHandle handle = nullptr;
  OfxImageClipHandle source = nullptr, keys = nullptr, matte = nullptr, output = nullptr;
  OfxParamSetHandle params = nullptr;
  bool filter_context = false;  // else general

  // the worker check (python + rerender answer), made once per instance on the first render
  std::mutex check_mutex;
  bool checked = false;
  std::string check_error;  // empty: the worker is usable
  std::string python;       // the interpreter that passed the check

  Settings settings(OfxTime time) const;
  bool connected(OfxImageClipHandle clip) const;
};

}  // namespace rr_ofx
