#include "json.h"

#include <cstdlib>

namespace rr_ofx::json {

namespace {

struct Parser {
  const std::string& s;
  size_t i = 0;
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  }
  bool lit(const char* w) {
    size_t n = std::char_traits<char>::length(w);
    if (s.compare(i, n, w) != 0) return false;
    i += n;
    return true;
  }
  static void utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }
  bool hex4(unsigned& v) {
    if (i + 4 > s.size()) return false;
    v = static_cast<unsigned>(std::strtoul(s.substr(i, 4).c_str(), nullptr, 16));
    i += 4;
    return true;
  }
  bool string(std::string& out) {
    if (i >= s.size() || s[i] != '"') return false;
    ++i;
    while (i < s.size()) {
      char c = s[i++];
      if (c == '"') return true;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i >= s.size()) return false;
      char e = s[i++];
      switch (e) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'u': {
          unsigned cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00 && s.compare(i, 2, "\\u") == 0) {  // surrogate pair
            unsigned lo;
            i += 2;
            if (!hex4(lo)) return false;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          utf8(out, cp);
          break;
        }
        default: out.push_back(e);
      }
    }
    return false;
  }
  bool skip_nested() {  // an array or object: balanced brackets outside strings
    int depth = 0;
    while (i < s.size()) {
      char c = s[i];
      if (c == '"') {
        std::string tmp;
        if (!string(tmp)) return false;
        continue;
      }
      ++i;
      if (c == '[' || c == '{') ++depth;
      if ((c == ']' || c == '}') && --depth == 0) return true;
    }
    return false;
  }
  bool value(Value& v) {
    ws();
    if (i >= s.size()) return false;
    char c = s[i];
    if (c == '"') {
      v.kind = Value::String;
      return string(v.text);
    }
    if (c == '[' || c == '{') {
      v.kind = Value::Other;
      return skip_nested();
    }
    if (lit("null")) return (v.kind = Value::Null), true;
    if (lit("true")) return (v.kind = Value::Bool), v.number = 1, true;
    if (lit("false")) return (v.kind = Value::Bool), v.number = 0, true;
    char* end = nullptr;
    v.number = std::strtod(s.c_str() + i, &end);
    if (end == s.c_str() + i) return false;
    i = static_cast<size_t>(end - s.c_str());
    v.kind = Value::Number;
    return true;
  }
};

}  // namespace

bool parse_object(const std::string& line, std::map<std::string, Value>& out) {
  Parser p{line};
  p.ws();
  if (p.i >= line.size() || line[p.i] != '{') return false;
  ++p.i;
  p.ws();
  if (p.i < line.size() && line[p.i] == '}') return true;
  while (p.i < line.size()) {
    p.ws();
    std::string key;
    if (!p.string(key)) return false;
    p.ws();
    if (p.i >= line.size() || line[p.i] != ':') return false;
    ++p.i;
    Value v;
    if (!p.value(v)) return false;
    out[key] = v;
    p.ws();
    if (p.i < line.size() && line[p.i] == ',') {
      ++p.i;
      continue;
    }
    return p.i < line.size() && line[p.i] == '}';
  }
  return false;
}

}  // namespace rr_ofx::json
