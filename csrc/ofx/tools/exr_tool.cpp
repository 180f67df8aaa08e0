// Test driver of the plugin's EXR reader/writer (tests/test_plugin_exr.py compiles it with exr.cpp):
//   exr_tool write PATH WIDTH HEIGHT CH1,CH2,...  < raw float32 pixels (interleaved, top row first)
//   exr_tool read PATH                            > "WIDTH HEIGHT CH1,CH2,...\n" + raw float32 pixels
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "../exr.h"

int main(int argc, char** argv) {
  using namespace rr_ofx;
  std::string error;
  if (argc == 6 && std::string(argv[1]) == "write") {
    exr::Image img;
    img.width = std::atoi(argv[3]);
    img.height = std::atoi(argv[4]);
    std::stringstream names(argv[5]);
    for (std::string n; std::getline(names, n, ',');) img.channels.push_back(n);
    img.pixels.resize(size_t(img.width) * img.height * img.channels.size());
    if (std::fread(img.pixels.data(), 4, img.pixels.size(), stdin) != img.pixels.size()) return 3;
    if (!exr::write(argv[2], img, error)) {
      std::cerr << error << "\n";
      return 1;
    }
    return 0;
  }
  if (argc == 3 && std::string(argv[1]) == "read") {
    exr::Image img;
    if (!exr::read(argv[2], img, error)) {
      std::cerr << error << "\n";
      return 1;
    }
    std::string names;
    for (auto& c : img.channels) names += (names.empty() ? "" : ",") + c;
    std::printf("%d %d %s\n", img.width, img.height, names.c_str());
    std::fwrite(img.pixels.data(), 4, img.pixels.size(), stdout);
    return 0;
  }
  std::cerr << "usage: exr_tool write PATH W H CHANNELS < floats | exr_tool read PATH\n";
  return 2;
}
