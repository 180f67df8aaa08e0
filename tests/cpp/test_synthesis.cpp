// The synthesis: its known answer, its independence of the thread count, and the shared schedule
// (core/synthesis_schedule.h) step by step.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/synthesis.h"
#include "core/synthesis_schedule.h"
#include "synthesis_case.h"

using namespace rerender;

TEST_CASE("synthesis finds the displacement field") {
  const SynthesisCase c = displaced_case("field", 96, 0);
  const synthesis::Result res = c.run(1);
  int ok = 0, total = 0;
  for (int y = 8; y < c.n - 8; ++y)
    for (int x = 8; x < c.n - 8; ++x) {
      const size_t i = static_cast<size_t>(y) * c.n + x;
      const float sx = x + 3.f * std::sin(6.2831853f * y / c.n), sy = y + 2.f * std::cos(6.2831853f * x / c.n);
      ok += std::fabs(res.nnf[2 * i] - sx) <= 1.f && std::fabs(res.nnf[2 * i + 1] - sy) <= 1.f;
      ++total;
    }
  CHECK(ok >= 0.95 * total);
}

TEST_CASE("synthesis gives the same bytes for any thread count") {
  for (const SynthesisCase& c : synthesis_cases()) {
    const synthesis::Result one = c.run(1);
    for (int threads : {2, 3, 4}) {
      const synthesis::Result many = c.run(threads);
      INFO(c.name, ", ", threads, " threads");
      CHECK(many.nnf == one.nnf);
      CHECK(std::memcmp(many.image.data(), one.image.data(), one.image.size() * 4) == 0);
      CHECK(std::memcmp(many.error.data(), one.error.data(), one.error.size() * 4) == 0);
    }
  }
}

namespace {

// Steps that write down what the schedule asks of them; `active_after` says how many of the
// vote-tracked searches still leave pixels active.
struct RecordingSteps {
  std::vector<std::string> log;
  int tracked_votes = 0, active_after = 1 << 30;
  bool any = true;

  void begin_level(int level) { log.push_back("begin " + std::to_string(level)); }
  void init_coarsest(int level) { log.push_back("init " + std::to_string(level)); }
  void upsample() { log.push_back("upsample"); }
  void style_term(bool on) { log.push_back(on ? "style on" : "style off"); }
  void search(uint64_t seed) { log.push_back("search " + std::to_string(seed)); }
  void vote(bool track) {
    log.push_back(track ? "vote track" : "vote");
    if (track) any = ++tracked_votes < active_after;
  }
  void activate_all() {
    log.push_back("activate all");
    any = true;
  }
  bool any_active() { return any; }
  void end_level(int level) { log.push_back("end " + std::to_string(level)); }
};

std::string seed_of(int level, int search) { return "search " + std::to_string(synthesis::search_seed(9, level, search)); }

}  // namespace

TEST_CASE("the schedule: two levels from a random start") {
  RecordingSteps s;
  synthesis::run_schedule(s, 2, /*warm_start=*/false, /*search_vote_iters=*/3, /*seed=*/9);
  const std::vector<std::string> want = {
      "begin 1", "init 1", "style off",                                        // random start: no first vote
      seed_of(1, 0), "vote", "activate all",                                   // every pixel is new
      seed_of(1, 1), "style on", "vote track",                                 // guide-only searches done
      seed_of(1, 2), "vote track", "end 1",
      "begin 0", "upsample", "vote", "style off",                              // the upsampled NNF is voted first
      seed_of(0, 0), "vote track", seed_of(0, 1), "style on", "vote track", seed_of(0, 2), "vote track", "end 0"};
  CHECK(s.log == want);
}

TEST_CASE("the schedule: a warm start, one search-vote iteration, and the early exit") {
  RecordingSteps one;
  synthesis::run_schedule(one, 1, /*warm_start=*/true, 1, 9);
  // fewer iterations than guide-only searches: the style comes back before the only vote
  CHECK(one.log == std::vector<std::string>{"begin 0", "init 0", "vote", "style off", seed_of(0, 0), "style on",
                                            "vote track", "end 0"});
  RecordingSteps stop;
  stop.active_after = 3;  // the third tracked vote leaves nothing to search
  synthesis::run_schedule(stop, 1, true, 12, 9);
  int searches = 0;
  for (const std::string& entry : stop.log) searches += entry.rfind("search", 0) == 0;
  CHECK(searches == 3);
  CHECK(stop.log.back() == "end 0");
  RecordingSteps guide_only;
  guide_only.active_after = 1;  // nothing active after the first search: still two guide-only searches
  synthesis::run_schedule(guide_only, 1, true, 12, 9);
  int n = 0;
  for (const std::string& entry : guide_only.log) n += entry.rfind("search", 0) == 0;
  CHECK(n == synthesis::kGuideOnlySearches);
}

TEST_CASE("levels: as asked, one for a warm start, else automatic") {
  synthesis::Params prm;
  CHECK(synthesis::resolved_levels(prm, true, 512, 512, 512, 512) == 1);
  CHECK(synthesis::resolved_levels(prm, false, 512, 512, 512, 512) == synthesis::auto_pyramid_levels(512, 512, 512, 512, 5));
  CHECK(synthesis::auto_pyramid_levels(512, 512, 512, 512, 5) == 6);  // 512 >> 5 = 16 >= 11 > 8
  prm.pyramid_levels = 3;
  CHECK(synthesis::resolved_levels(prm, true, 512, 512, 512, 512) == 3);
}
