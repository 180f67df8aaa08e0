#include "worker.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include "json.h"

#if !defined(_WIN32)
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
extern char** environ;
#endif

namespace rr_ofx {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// This plugin's own file: BUNDLE/Contents/ARCH/Rerender.ofx.
std::string plugin_file() {
#if defined(_WIN32)
  return {};
#else
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&plugin_file), &info) && info.dli_fname) return info.dli_fname;
  return {};
#endif
}

std::string parent(const std::string& path) {
  size_t slash = path.find_last_of("/\\");
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

using Clock = std::chrono::steady_clock;

}  // namespace

std::string worker_python(std::string& error) {
  if (std::string p = env("RERENDER_OFX_PYTHON"); !p.empty()) return p;
  std::string resources = parent(parent(plugin_file())) + "/Resources/rerender-worker.json";
  std::ifstream f(resources);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::map<std::string, json::Value> fields;
  if (f && json::parse_object(text, fields) && fields["python"].kind == json::Value::String &&
      !fields["python"].text.empty())
    return fields["python"].text;
  error = "no worker Python: this bundle was not installed by `rerender ofx install` (" + resources +
          " is missing or unreadable) and RERENDER_OFX_PYTHON is not set. Run `rerender ofx install` with the "
          "Python that has rerender.";
  return {};
}

std::string cache_root() {
  if (std::string c = env("RERENDER_OFX_CACHE"); !c.empty()) return c;
#if defined(_WIN32)
  return env("LOCALAPPDATA") + "\\rerender\\ofx";
#elif defined(__APPLE__)
  return env("HOME") + "/Library/Caches/rerender/ofx";
#else
  std::string base = env("XDG_CACHE_HOME");
  if (base.empty()) base = env("HOME") + "/.cache";
  return base + "/rerender/ofx";
#endif
}

#if defined(_WIN32)
// Windows: the job would run through CreateProcess with a pipe and TerminateProcess; not built yet.
Process::~Process() {}
bool Process::start(const std::vector<std::string>&, const std::vector<std::string>&, const std::vector<std::string>&,
                    const std::string&, std::string& error) {
  error = "the worker cannot be started on Windows yet";
  return false;
}
bool Process::read_lines(int, const std::function<void(const std::string&)>&) { return false; }
int Process::wait(int) { return status_; }
int Process::stop(int) { return status_; }
int run_capture(const std::vector<std::string>&, int, const std::string&, std::string& output) {
  output = "the worker cannot be started on Windows yet";
  return -1;
}
#else

Process::~Process() {
  if (running()) stop(2000);
  if (out_fd_ >= 0) close(out_fd_);
}

bool Process::start(const std::vector<std::string>& argv, const std::vector<std::string>& unset,
                    const std::vector<std::string>& set, const std::string& stderr_path, std::string& error) {
  std::vector<std::string> envs;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    std::string name = kv.substr(0, kv.find('='));
    bool drop = false;
    for (auto& u : unset) drop |= name == u;
    for (auto& s : set) drop |= name == s.substr(0, s.find('='));
    if (!drop) envs.push_back(kv);
  }
  envs.insert(envs.end(), set.begin(), set.end());
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (auto& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  // close-on-exec: not inherited by other children the host starts (the worker gets its copy by dup2)
  int fds[2];
#if defined(__linux__)
  int piped = pipe2(fds, O_CLOEXEC);
#else
  int piped = pipe(fds);
  if (piped == 0) {
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  }
#endif
  if (piped != 0) {
    error = std::string("cannot create a pipe: ") + std::strerror(errno);
    return false;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // its own process group (stopped as a whole, untouched by the host's terminal signals), default
  // signal handlers and no blocked signals whatever the host's thread had
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGTERM, SIGINT, SIGPIPE, SIGCHLD, SIGHUP}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    error = argv[0] + ": cannot run it (" + std::strerror(rc) + ")";
    return false;
  }
  pid_ = pid;
  out_fd_ = fds[0];
  status_ = -1;
  return true;
}

bool Process::read_lines(int timeout_ms, const std::function<void(const std::string&)>& on_line) {
  if (out_fd_ < 0) return false;
  pollfd p{out_fd_, POLLIN, 0};
  int r = poll(&p, 1, timeout_ms);
  if (r <= 0) return r == 0 || errno == EINTR;
  char buf[8192];
  ssize_t n = read(out_fd_, buf, sizeof(buf));
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) {
    if (!pending_.empty()) on_line(pending_);
    pending_.clear();
    close(out_fd_);
    out_fd_ = -1;
    return false;
  }
  pending_.append(buf, static_cast<size_t>(n));
  for (size_t nl; (nl = pending_.find('\n')) != std::string::npos;) {
    std::string line = pending_.substr(0, nl);
    pending_.erase(0, nl + 1);
    on_line(line);
  }
  return true;
}

int Process::wait(int timeout_ms) {
  if (pid_ <= 0 || status_ != -1) return status_;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int st = 0;
    pid_t r = waitpid(static_cast<pid_t>(pid_), &st, WNOHANG);
    if (r == static_cast<pid_t>(pid_)) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
      return status_;
    }
    if (r < 0 && errno == ECHILD) {  // the host reaps children itself (SIGCHLD ignored): status unknown
      status_ = 255;
      return status_;
    }
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int Process::stop(int grace_ms) {
  if (!running()) return status_;
  kill(-static_cast<pid_t>(pid_), SIGTERM);
  if (wait(grace_ms) != -1) return status_;
  kill(-static_cast<pid_t>(pid_), SIGKILL);
  return wait(10000);
}

int run_capture(const std::vector<std::string>& argv, int timeout_ms, const std::string& log_path,
                std::string& output) {
  const char* path = log_path.c_str();
  unlink(path);
  Process p;
  std::string error;
  if (!p.start(argv, {}, {}, path, error)) {
    unlink(path);
    output = error;
    return -1;
  }
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string out;
  while (p.read_lines(100, [&](const std::string& l) { out += l + "\n"; }) && Clock::now() < deadline) {
  }
  int status = p.wait(static_cast<int>(std::max<long long>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count())));
  if (status == -1) {
    p.stop(1000);
    status = -2;
  }
  std::ifstream err(path);
  out += std::string((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  unlink(path);
  output = out;
  return status;
}
#endif

}  // namespace rr_ofx
