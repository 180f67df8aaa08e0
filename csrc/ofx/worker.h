// The worker process (`PYTHON -m rerender ...`): which Python, where the cache lives, spawning it
// with its stdout on a pipe, reading its JSON lines, and stopping it (SIGTERM, then SIGKILL).
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace rr_ofx {

// $RERENDER_OFX_PYTHON, else "python" of the bundle's Contents/Resources/rerender-worker.json
// (written by `rerender ofx install`); empty with `error` set when neither is there.
std::string worker_python(std::string& error);

// $RERENDER_OFX_CACHE, else the OS per-user cache folder + rerender/ofx.
std::string cache_root();

class Process {
 public:
  Process() = default;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  // Start argv[0] (a path or a name on PATH) with `unset` removed from the environment and
  // `set` ("NAME=VALUE") added; stdout on a pipe, stderr appended to `stderr_path`, stdin empty.
  bool start(const std::vector<std::string>& argv, const std::vector<std::string>& unset,
             const std::vector<std::string>& set, const std::string& stderr_path, std::string& error);
  // Wait up to `timeout_ms` for output; every complete line goes to `on_line`. False once the
  // worker closed its stdout (it is ending).
  bool read_lines(int timeout_ms, const std::function<void(const std::string&)>& on_line);
  // The exit status once it ended (waits up to `timeout_ms`); -1 while running; 128+N for signal N.
  int wait(int timeout_ms);
  // SIGTERM to its process group, SIGKILL after `grace_ms`; returns the exit status.
  int stop(int grace_ms);
  bool running() const { return pid_ > 0 && status_ == -1; }

 private:
  long pid_ = -1;
  int out_fd_ = -1;
  int status_ = -1;
  std::string pending_;
};

// Run `argv` to completion within `timeout_ms` (killed after it); its stdout+stderr in `output`
// (stderr passes through `log_path`, which is removed). Returns the exit status, -1 when it could
// not start (then `output` says why), -2 when it timed out.
int run_capture(const std::vector<std::string>& argv, int timeout_ms, const std::string& log_path,
                std::string& output);

}  // namespace rr_ofx
