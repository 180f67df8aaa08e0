// Jobs: one worker run per digest. The first render call that needs a result runs the job; calls
// for the same shot from other threads wait for it (polling their own abort), calls from other
// host processes wait on a file lock. A job writes its inputs, runs the worker with progress and
// abort, and publishes the result folder by renaming it into place (its existence = finished).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "instance.h"

namespace rr_ofx {

struct JobSpec {
  std::string job_dir;     // CACHE/jobs/J: plates, keys, matte, the worker's work directory, its log
  std::string result_dir;  // CACHE/results/D: the finished frames
  std::function<bool(std::string& error)> write_inputs;  // called by the job that runs, under the lock
  std::vector<std::string> argv;                         // the worker's command line
  std::vector<std::string> env_unset;                    // variables the worker must not see
};

enum class JobOutcome { Done, Failed, Aborted };

JobOutcome run_or_wait(Instance& inst, const JobSpec& spec, std::string& error);

bool exists(const std::string& path);
// Create `dir` and its parents; false with `error` set.
bool make_dirs(const std::string& dir, std::string& error);

}  // namespace rr_ofx
