// The host's suites as the plugin fetched them at Load, and small typed wrappers of the property
// suite (the C API reports every failure by status; these return a fallback instead).
#pragma once

#include <string>
#include <vector>

#include "ofx_api.h"

namespace rr_ofx {

struct Suites {
  OfxHost* host = nullptr;
  const OfxPropertySuiteV1* prop = nullptr;
  const OfxImageEffectSuiteV1* effect = nullptr;
  const OfxParameterSuiteV1* param = nullptr;
  const OfxMemorySuiteV1* memory = nullptr;          // optional
  const OfxMultiThreadSuiteV1* thread = nullptr;     // optional
  const OfxMessageSuiteV1* message = nullptr;        // required: errors must reach the artist
  const OfxMessageSuiteV2* message2 = nullptr;       // optional: persistent messages
  const OfxProgressSuiteV1* progress = nullptr;      // optional
};

extern Suites g;

inline std::string get_string(OfxPropertySetHandle p, const char* name, int index = 0, const std::string& fallback = "") {
  char* v = nullptr;
  if (!p || g.prop->propGetString(p, name, index, &v) != kOfxStatOK || !v) return fallback;
  return v;
}
inline int get_int(OfxPropertySetHandle p, const char* name, int index = 0, int fallback = 0) {
  int v = fallback;
  if (!p || g.prop->propGetInt(p, name, index, &v) != kOfxStatOK) return fallback;
  return v;
}
inline double get_double(OfxPropertySetHandle p, const char* name, int index = 0, double fallback = 0) {
  double v = fallback;
  if (!p || g.prop->propGetDouble(p, name, index, &v) != kOfxStatOK) return fallback;
  return v;
}
inline void* get_pointer(OfxPropertySetHandle p, const char* name, int index = 0) {
  void* v = nullptr;
  if (!p || g.prop->propGetPointer(p, name, index, &v) != kOfxStatOK) return nullptr;
  return v;
}
inline void set_strings(OfxPropertySetHandle p, const char* name, const std::vector<const char*>& values) {
  for (int i = 0; i < static_cast<int>(values.size()); ++i) g.prop->propSetString(p, name, i, values[i]);
}

}  // namespace rr_ofx
