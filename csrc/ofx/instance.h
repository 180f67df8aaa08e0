// One effect instance: its clips, its parameters, and what it learnt about its worker.
#pragma once

#include <map>
#include <mutex>
#include <optional>
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

// The last shot an instance rendered during the current sequence render (the host's batch between
// BeginSequenceRender and EndSequenceRender, where its inputs hold still), for the quick check of
// the batch's other frames: the digests of every Source/Matte frame, of the keys and of the
// parameters, and where its result is.
struct ShotMemo {
  unsigned long long sequence = 0;
  std::string settings;
  int first = 0, last = 0;
  std::map<int, std::string> source, matte;
  std::string keys;
  OfxRectI bounds{};
  std::string depth;
  std::string result_dir;
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

  std::mutex memo_mutex;
  std::optional<ShotMemo> memo;
  int sequence_depth = 0;               // open BeginSequenceRender calls (guarded by memo_mutex)
  unsigned long long sequence = 0;      // the current sequence render's number

  Settings settings(OfxTime time) const;
  bool connected(OfxImageClipHandle clip) const;
};

}  // namespace rr_ofx
