#include "job.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "json.h"
#include "worker.h"

#if !defined(_WIN32)
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#endif

namespace fs = std::filesystem;

namespace rr_ofx {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kPollMs = 100;
constexpr int kStopGraceMs = 5000;  // SIGTERM first: rerender's files are atomic, the job resumes

// One slot per job folder: the mutex serialises this process's jobs on it; the last failure is
// kept so that the calls that waited for a job do not run it again at once.
struct Slot {
  std::timed_mutex run;
  std::mutex state;
  std::string failed_result;
  std::string failed_message;
  Clock::time_point failed_at{};
};

std::shared_ptr<Slot> slot_for(const std::string& job_dir) {
  static std::mutex registry_mutex;
  static std::map<std::string, std::shared_ptr<Slot>> registry;
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto& s = registry[job_dir];
  if (!s) s = std::make_shared<Slot>();
  return s;
}

bool aborted(Instance& inst) { return g.effect->abort && g.effect->abort(inst.handle) != 0; }

// An exclusive lock on a file for other host processes rendering the same shot.
class FileLock {
 public:
  ~FileLock() {
#if !defined(_WIN32)
    if (fd_ >= 0) {
      flock(fd_, LOCK_UN);
      close(fd_);
    }
#endif
  }
  // Wait for the lock, polling `stop`; false when stopped or the file cannot be opened.
  bool acquire(const std::string& path, const std::function<bool()>& stop, std::string& error) {
#if defined(_WIN32)
    return true;
#else
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      error = path + ": cannot open the job's lock file";
      return false;
    }
    while (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (stop()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
    }
    return true;
#endif
  }

 private:
  int fd_ = -1;
};

struct Progress {
  Instance& inst;
  bool started = false;
  explicit Progress(Instance& i) : inst(i) {
    if (g.progress) started = g.progress->progressStart(inst.handle, "Rerender Propagate") == kOfxStatOK;
  }
  // false when the artist cancelled through the progress dialog
  bool update(double fraction) {
    if (!started) return true;
    return g.progress->progressUpdate(inst.handle, fraction) != kOfxStatReplyNo;
  }
  ~Progress() {
    if (started) g.progress->progressEnd(inst.handle);
  }
};

std::string last_line(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return {};
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return {};
  std::fseek(f, 0, SEEK_END);
  long size = std::ftell(f);
  long from = size > 8192 ? size - 8192 : 0;
  std::fseek(f, from, SEEK_SET);
  std::string tail(static_cast<size_t>(size - from), '\0');
  tail.resize(std::fread(tail.data(), 1, tail.size(), f));
  std::fclose(f);
  std::string line;
  size_t end = tail.find_last_not_of("\r\n \t");
  if (end == std::string::npos) return {};
  size_t start = tail.find_last_of('\n', end);
  return tail.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

// Run the worker for `spec` (the caller holds the locks). Done: the result folder is in place.
JobOutcome run_worker(Instance& inst, const JobSpec& spec, std::string& error) {
  std::string partial = spec.result_dir + ".partial";
  std::error_code ec;
  fs::remove_all(partial, ec);
  if (!make_dirs(partial, error)) return JobOutcome::Failed;
  const std::string log = spec.job_dir + "/worker.log";
  Process worker;
  if (!worker.start(spec.argv, spec.env_unset, {"PYTHONUNBUFFERED=1", "PYTHONIOENCODING=utf-8"}, log, error))
    return JobOutcome::Failed;
  Progress progress(inst);
  std::string worker_error;
  bool done_event = false;
  bool stopped = false;
  // the bar: `rerender propagate`'s stages weighted by their usual share of the time (they overlap)
  const std::map<std::string, double> weights = {{"decode", 0.05}, {"propagate", 0.65},
                                                 {"blend", 0.2}, {"write", 0.1}};
  std::map<std::string, double> fractions;
  auto overall = [&] {
    double f = 0;
    for (auto& [stage, done] : fractions)
      if (auto w = weights.find(stage); w != weights.end()) f += w->second * done;
    return std::min(f, 1.0);
  };
  auto on_line = [&](const std::string& line) {
    std::map<std::string, json::Value> ev;
    if (!json::parse_object(line, ev)) return;
    const std::string kind = ev["event"].text;
    if (kind == "error") {
      worker_error = ev["message"].text;
    } else if (kind == "done") {
      done_event = true;
    } else if (kind == "progress" && ev["total"].number > 0) {
      fractions[ev["stage"].text] = ev["done"].number / ev["total"].number;
      if (!progress.update(overall())) stopped = true;
    }
  };
  while (worker.read_lines(kPollMs, on_line)) {
    if (stopped || aborted(inst)) {
      worker.stop(kStopGraceMs);
      return JobOutcome::Aborted;
    }
  }
  int status = -1;
  while ((status = worker.wait(kPollMs)) == -1) {
    if (aborted(inst)) {
      worker.stop(kStopGraceMs);
      return JobOutcome::Aborted;
    }
  }
  if (status == 255 && done_event) status = 0;  // exit status unknown (the host reaps children)
  if (status != 0 || !done_event) {
    if (worker_error.empty()) worker_error = last_line(log);
    error = "the rerender worker failed (exit status " + std::to_string(status) + ")" +
            (worker_error.empty() ? std::string() : ": " + worker_error) + " [log: " + log + "]";
    return JobOutcome::Failed;
  }
  fs::remove_all(spec.result_dir, ec);
  fs::rename(partial, spec.result_dir, ec);
  if (ec) {
    error = spec.result_dir + ": cannot publish the result (" + ec.message() + ")";
    return JobOutcome::Failed;
  }
  return JobOutcome::Done;
}

}  // namespace

bool exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

bool make_dirs(const std::string& dir, std::string& error) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec && !fs::is_directory(dir)) {
    error = dir + ": cannot create the folder (" + ec.message() + ")";
    return false;
  }
  return true;
}

JobOutcome run_or_wait(Instance& inst, const JobSpec& spec, std::string& error) {
  const auto asked = Clock::now();
  auto slot = slot_for(spec.job_dir);
  for (;;) {
    if (exists(spec.result_dir)) return JobOutcome::Done;
    if (!slot->run.try_lock_for(std::chrono::milliseconds(kPollMs))) {
      if (aborted(inst)) return JobOutcome::Aborted;
      continue;
    }
    std::lock_guard<std::timed_mutex> held(slot->run, std::adopt_lock);
    {
      std::lock_guard<std::mutex> st(slot->state);
      if (slot->failed_result == spec.result_dir && slot->failed_at >= asked) {
        error = slot->failed_message;  // the job this call waited for failed: same answer, no rerun
        return JobOutcome::Failed;
      }
    }
    if (exists(spec.result_dir)) return JobOutcome::Done;
    if (!make_dirs(spec.job_dir, error)) return JobOutcome::Failed;
    FileLock lock;
    if (!lock.acquire(spec.job_dir + "/.lock", [&] { return aborted(inst); }, error))
      return error.empty() ? JobOutcome::Aborted : JobOutcome::Failed;
    if (exists(spec.result_dir)) return JobOutcome::Done;  // another host process finished it
    JobOutcome outcome = spec.write_inputs(error) ? run_worker(inst, spec, error)
                         : error.empty()        ? JobOutcome::Aborted  // stopped while fetching frames
                                                : JobOutcome::Failed;
    if (outcome == JobOutcome::Failed) {
      std::lock_guard<std::mutex> st(slot->state);
      slot->failed_result = spec.result_dir;
      slot->failed_message = error;
      slot->failed_at = Clock::now();
    }
    return outcome;
  }
}

}  // namespace rr_ofx
