// Just enough JSON for the worker's progress lines and the bundle's rerender-worker.json: the
// top-level members of one object, strings (with escapes) and numbers kept, nested values skipped.
#pragma once

#include <map>
#include <string>

namespace rr_ofx::json {

struct Value {
  enum Kind { Null, Bool, Number, String, Other } kind = Null;
  std::string text;  // String: the decoded string
  double number = 0;
};

// The members of a JSON object; false when `line` is not one.
bool parse_object(const std::string& line, std::map<std::string, Value>& out);

}  // namespace rr_ofx::json
