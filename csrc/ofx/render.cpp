// The Render action: the shot's frames through temporal clip access -> a digest -> the job's result
// (job.h runs the worker once per digest) -> the requested frame at the host's depth.
//
// Cache layout (CACHE = worker.h cache_root()):
//   CACHE/jobs/J/     J = digest of the Source (and Matte) pixels and the pixel depth: plates/, matte/,
//                     keys/ and the worker's work directory work/. One folder per shot, whatever the
//                     keys and parameters: rerender's own resume and segment fingerprints then reuse
//                     every segment that a repainted key leaves valid.
//   CACHE/results/D/  D = J + the key frames' pixels + the parameters: the finished frames
//                     out.<host frame>.exr. Later renders (any frame, any thread) read them.
#include "render.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>

#include "exr.h"
#include "hash.h"
#include "image.h"
#include "job.h"
#include "worker.h"

#if defined(_WIN32)
#include <process.h>
#define getpid _getpid
#else
#include <unistd.h>
#endif

namespace rr_ofx {

namespace {

constexpr const char* kKeysClip = "Keys";
constexpr const char* kMatteClip = "Matte";
constexpr int kCheckTimeoutMs = 60000;

// ---- the worker check: once per instance (a failure is checked again at the next render)

bool check_worker(Instance& inst, std::string& python, std::string& error) {
  std::lock_guard<std::mutex> lock(inst.check_mutex);
  if (inst.checked) {
    python = inst.python;
    return true;
  }
  python = worker_python(error);
  if (python.empty()) return false;
  std::string root = cache_root();
  if (!make_dirs(root, error)) return false;
  std::ostringstream log;
  log << root << "/worker-check-" << static_cast<long>(getpid()) << "-" << std::this_thread::get_id() << ".log";
  std::string output;
  int status = run_capture({python, "-m", "rerender", "--version"}, kCheckTimeoutMs, log.str(), output);
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  std::string last = output.substr(output.find_last_of('\n') == std::string::npos ? 0 : output.find_last_of('\n') + 1);
  if (status == -1) {
    error = "the worker Python cannot be run: " + output + ". Reinstall the plugin with `rerender ofx install` "
            "from the Python that has rerender, or set RERENDER_OFX_PYTHON.";
    return false;
  }
  if (status == -2) {
    error = "the worker Python " + python + " did not answer within 60 s (`python -m rerender --version`)";
    return false;
  }
  if (status != 0 || output.rfind("rerender ", 0) != 0) {
    error = "the worker Python " + python + " cannot run rerender (" + (last.empty() ? "no output" : last) +
            "). Install rerender into it, or reinstall the plugin with `rerender ofx install` from the Python "
            "that has rerender.";
    return false;
  }
  // the worker's command line is this plugin's: its rerender must be the same major.minor version
  const std::string version = output.substr(9, output.find_first_of("\r\n") - 9);
  const std::string mine = std::to_string(RR_OFX_VERSION_MAJOR) + "." + std::to_string(RR_OFX_VERSION_MINOR);
  if (version != mine && version.rfind(mine + ".", 0) != 0) {
    error = "the worker Python " + python + " runs rerender " + version + ", this plugin is rerender " + mine +
            ": reinstall the plugin with `rerender ofx install` from that Python (or install rerender " + mine +
            " into it)";
    return false;
  }
  inst.checked = true;
  inst.python = python;
  return true;
}

void report(Instance& inst, const std::string& message) {
  std::string text = "Rerender Propagate: " + message;
  if (g.message2 && g.message2->setPersistentMessage)
    g.message2->setPersistentMessage(inst.handle, kOfxMessageError, "", "%s", text.c_str());
  else
    g.message->message(inst.handle, kOfxMessageError, "", "%s", text.c_str());
}

bool aborted(Instance& inst) { return g.effect->abort && g.effect->abort(inst.handle) != 0; }

// Everything one render needs to know about its shot.
struct Shot {
  int first = 0, last = 0;  // Source frames, inclusive
  std::vector<int> keys;
  std::vector<int> cuts;  // zero-based indices of later shots' first frames
  bool cuts_auto = false;
  bool matte = false;
  OfxRectI bounds{};
  std::string depth;
  Settings settings;
};

bool check_size(const Image& img, const Shot& shot, const char* clip, OfxTime t, std::string& error) {
  if (img.bounds.x1 == shot.bounds.x1 && img.bounds.y1 == shot.bounds.y1 && img.bounds.x2 == shot.bounds.x2 &&
      img.bounds.y2 == shot.bounds.y2)
    return true;
  std::ostringstream m;
  m << clip << " at frame " << t << " is " << img.width() << "x" << img.height() << " at (" << img.bounds.x1 << ","
    << img.bounds.y1 << "); the Source is " << (shot.bounds.x2 - shot.bounds.x1) << "x"
    << (shot.bounds.y2 - shot.bounds.y1) << " at (" << shot.bounds.x1 << "," << shot.bounds.y1
    << "): all clips must have the same size";
  error = m.str();
  return false;
}

// Visit every input frame of the shot (Source, Matte, Keys), checking sizes. `visit` returns false
// to stop. Returns false with `error` set (or empty when aborted).
template <class Visit>
bool for_each_frame(Instance& inst, Shot& shot, std::string& error, Visit visit) {
  for (int f = shot.first; f <= shot.last; ++f) {
    if (aborted(inst)) return false;
    Image img;
    if (!fetch(inst.source, kOfxImageEffectSimpleSourceClipName, f, img, error)) return false;
    if (f == shot.first) {
      shot.bounds = img.bounds;
      shot.depth = img.depth;
    }
    if (!check_size(img, shot, "Source", f, error) || !visit(img, kOfxImageEffectSimpleSourceClipName, f)) return false;
  }
  if (shot.matte) {
    for (int f = shot.first; f <= shot.last; ++f) {
      if (aborted(inst)) return false;
      Image img;
      if (!fetch(inst.matte, kMatteClip, f, img, error) || !check_size(img, shot, "Matte", f, error) ||
          !visit(img, kMatteClip, f))
        return false;
    }
  }
  for (int k : shot.keys) {
    if (aborted(inst)) return false;
    Image img;
    if (!fetch(inst.keys, kKeysClip, k, img, error) || !check_size(img, shot, "Keys", k, error) ||
        !visit(img, kKeysClip, k))
      return false;
  }
  return true;
}

bool plan_shot(Instance& inst, OfxTime time, Shot& shot, std::string& error) {
  shot.settings = inst.settings(time);
  OfxRangeD range = source_range(inst);
  shot.first = static_cast<int>(std::ceil(range.min));
  shot.last = static_cast<int>(std::floor(range.max));
  if (shot.last < shot.first) {
    error = "the Source clip has no frames";
    return false;
  }
  if (shot.first < 0) {
    error = "the Source starts at frame " + std::to_string(shot.first) + "; frames before 0 are not supported";
    return false;
  }
  if (!parse_frame_list(shot.settings.key_frames, shot.keys, error)) {
    error = "Key frames: " + error;
    return false;
  }
  if (shot.keys.empty()) {
    error = "no key frames: list the frames painted in the Keys clip in the Key frames parameter (e.g. " +
            std::to_string(shot.first) + ")";
    return false;
  }
  for (int k : shot.keys) {
    if (k < shot.first || k > shot.last) {
      error = "key frame " + std::to_string(k) + " is outside the Source clip's frames " + std::to_string(shot.first) +
              "-" + std::to_string(shot.last);
      return false;
    }
  }
  if (!inst.connected(inst.keys)) {
    error = "the Keys clip is not connected: connect the painted key frames";
    return false;
  }
  std::string cuts = shot.settings.cuts;
  cuts.erase(std::remove_if(cuts.begin(), cuts.end(), ::isspace), cuts.end());
  if (cuts == "auto") {
    shot.cuts_auto = true;
  } else {
    std::vector<int> frames;
    if (!parse_frame_list(cuts, frames, error)) {
      error = "Shot cuts: " + error;
      return false;
    }
    for (int c : frames) {
      if (c <= shot.first || c > shot.last) {
        error = "Shot cuts: frame " + std::to_string(c) + " is not a later frame of the Source (" +
                std::to_string(shot.first + 1) + "-" + std::to_string(shot.last) + ")";
        return false;
      }
      shot.cuts.push_back(c - shot.first);
    }
  }
  shot.matte = inst.connected(inst.matte);
  if (shot.settings.output_alpha && !shot.matte) {
    error = "Output alpha needs the Matte clip (the alpha is the matte)";
    return false;
  }
  if (shot.settings.output_alpha && inst.filter_context) {
    OfxPropertySetHandle p = nullptr;
    g.effect->clipGetPropertySet(inst.output, &p);
    if (get_string(p, kOfxImageEffectPropComponents) != kOfxImageComponentRGBA) {
      error = "Output alpha needs an RGBA output: in the filter context the Output has the Source's components "
              "(use an RGBA Source or the general context)";
      return false;
    }
  }
  return true;
}

std::vector<std::string> worker_command(const std::string& python, const Shot& shot, const std::string& job_dir,
                                        const std::string& partial) {
  const Settings& s = shot.settings;
  std::vector<std::string> argv = {python, "-m", "rerender", "--progress", "json", "propagate",
                                   job_dir + "/plates/src.%04d.exr", "--keys", job_dir + "/keys",
                                   "--key-numbering", "frame", "-o", partial + "/out.####.exr",
                                   "--work-dir", job_dir + "/work", "--flow", s.flow, "--blend", s.blend,
                                   "--no-audio"};
  if (s.working_size > 0) argv.insert(argv.end(), {"--size", std::to_string(s.working_size)});
  if (s.poisson) argv.push_back("--poisson");
  if (shot.matte) {
    argv.insert(argv.end(), {"--matte", job_dir + "/matte/src.%04d.exr"});
    std::ostringstream feather;
    feather.precision(17);
    feather << s.matte_feather;
    argv.insert(argv.end(), {"--matte-feather", feather.str()});
    if (s.output_alpha) argv.push_back("--alpha");
  }
  if (shot.cuts_auto) {
    argv.insert(argv.end(), {"--cuts", "auto"});
  } else if (!shot.cuts.empty()) {
    std::string list;
    for (int c : shot.cuts) list += (list.empty() ? "" : ",") + std::to_string(c);
    argv.insert(argv.end(), {"--cuts", list});
  }
  if (s.quality == "draft") argv.insert(argv.end(), {"--config", job_dir + "/quality-draft.json"});
  return argv;
}

bool write_text(const std::string& path, const std::string& text, std::string& error) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fclose(f) != 0 ||
      std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = path + ": cannot write";
    return false;
  }
  return true;
}

// The job's inputs: plates and matte once per job folder, the keys of this run, the quality preset.
bool write_inputs(Instance& inst, Shot& shot, const std::string& job_dir, std::string& error) {
  const std::string plates = job_dir + "/plates", keys = job_dir + "/keys", matte = job_dir + "/matte";
  const bool have_plates = exists(plates + "/complete");
  for (auto& d : {plates, keys, matte})
    if (!make_dirs(d, error)) return false;
  std::error_code ec;
  for (auto& entry : std::filesystem::directory_iterator(keys, ec)) std::filesystem::remove(entry.path(), ec);
  Shot copy = shot;
  bool ok = for_each_frame(inst, copy, error, [&](const Image& img, const char* clip, int f) {
    if (clip == kKeysClip) return write_plate(img, Plate::Colour, frame_file(keys, "src", f), error);
    if (have_plates) return true;
    if (clip == kMatteClip) return write_plate(img, Plate::Matte, frame_file(matte, "src", f), error);
    return write_plate(img, Plate::Colour, frame_file(plates, "src", f), error);
  });
  if (!ok) return false;
  if (!have_plates && !write_text(plates + "/complete", "", error)) return false;
  // draft: about a third of the PatchMatch and search-vote work of rerender's defaults
  return write_text(job_dir + "/quality-draft.json",
                    "{\"propagation\": {\"search_vote_iters\": 4, \"patchmatch_iters\": 2}}\n", error);
}

// The finished frame at `time` into the host's output image.
bool write_output(Instance& inst, const Shot& shot, const std::string& result_dir, OfxTime time,
                  OfxPropertySetHandle in_args, std::string& error) {
  const int frame = static_cast<int>(std::lround(time));
  if (frame < shot.first || frame > shot.last) {
    error = "frame " + std::to_string(frame) + " is outside the Source clip's frames";
    return false;
  }
  exr::Image result;
  if (!exr::read(frame_file(result_dir, "out", frame), result, error)) return false;
  const int W = shot.bounds.x2 - shot.bounds.x1, H = shot.bounds.y2 - shot.bounds.y1;
  if (result.width != W || result.height != H) {
    error = "the worker's frame " + std::to_string(frame) + " has another size than the Source";
    return false;
  }
  int ch[4] = {result.channel("R"), result.channel("G"), result.channel("B"), result.channel("A")};
  if (ch[0] < 0 || ch[1] < 0 || ch[2] < 0) {
    error = "the worker's frame " + std::to_string(frame) + " has no R, G, B channels";
    return false;
  }
  Image out;
  if (!fetch(inst.output, kOfxImageEffectOutputClipName, time, out, error)) return false;
  // without the matte as alpha, an RGBA output carries the source's alpha
  Image source;
  const bool pass_alpha = out.nc == 4 && !shot.settings.output_alpha;
  if (pass_alpha && !fetch(inst.source, kOfxImageEffectSimpleSourceClipName, time, source, error)) return false;
  int w[4] = {out.bounds.x1, out.bounds.y1, out.bounds.x2, out.bounds.y2};
  g.prop->propGetIntN(in_args, kOfxImageEffectPropRenderWindow, 4, w);
  const int x1 = std::max(w[0], out.bounds.x1), y1 = std::max(w[1], out.bounds.y1);
  const int x2 = std::min(w[2], out.bounds.x2), y2 = std::min(w[3], out.bounds.y2);
  const bool encode = out.bytes != 4;
  const size_t nc = result.channels.size();
  for (int y = y1; y < y2; ++y) {
    for (int x = x1; x < x2; ++x) {
      const int sx = x - shot.bounds.x1, row = shot.bounds.y2 - 1 - y;
      const bool inside = sx >= 0 && sx < W && row >= 0 && row < H;
      const float* px = inside ? result.pixels.data() + (static_cast<size_t>(row) * W + sx) * nc : nullptr;
      // with the matte as alpha the worker's colour is premultiplied: the sRGB curve applies to the
      // straight colour, premultiplied again after (OFX integer images are premultiplied too)
      const float alpha = shot.settings.output_alpha && px && ch[3] >= 0 ? px[ch[3]] : 1.0f;
      for (int c = 0; c < out.nc; ++c) {
        float v = 0.0f;
        if (c < 3) {
          v = px ? px[ch[c]] : 0.0f;
          if (encode && alpha == 1.0f) {
            v = linear_to_srgb(v);
          } else if (encode) {  // clipped to the display range before premultiplying: colour <= alpha
            v = alpha > 0.0f ? std::min(std::max(linear_to_srgb(v / alpha), 0.0f), 1.0f) * alpha : 0.0f;
          }
        } else if (!pass_alpha) {
          v = px && ch[3] >= 0 ? px[ch[3]] : 1.0f;
        } else {
          v = source.nc == 4 && x >= source.bounds.x1 && x < source.bounds.x2 && y >= source.bounds.y1 &&
                      y < source.bounds.y2
                  ? source.get(x, y, 3)
                  : 1.0f;
        }
        out.set(x, y, c, v);
      }
    }
  }
  return true;
}

}  // namespace

OfxRangeD source_range(const Instance& inst) {
  OfxPropertySetHandle p = nullptr;
  g.effect->clipGetPropertySet(inst.source, &p);
  return OfxRangeD{get_double(p, kOfxImageEffectPropFrameRange, 0), get_double(p, kOfxImageEffectPropFrameRange, 1)};
}

bool parse_frame_list(const std::string& text, std::vector<int>& frames, std::string& error) {
  frames.clear();
  std::string item;
  std::stringstream in(text);
  while (std::getline(in, item, ',')) {
    item.erase(std::remove_if(item.begin(), item.end(), ::isspace), item.end());
    if (item.empty()) continue;
    char* end = nullptr;
    long v = std::strtol(item.c_str(), &end, 10);
    if (*end != '\0' || v < -1000000000L || v > 1000000000L) {
      error = "'" + item + "' is not a frame number (expected numbers separated by commas, e.g. 1001,1011)";
      return false;
    }
    frames.push_back(static_cast<int>(v));
  }
  std::sort(frames.begin(), frames.end());
  frames.erase(std::unique(frames.begin(), frames.end()), frames.end());
  return true;
}

OfxStatus render(Instance& inst, OfxPropertySetHandle in_args) {
  const OfxTime time = get_double(in_args, kOfxPropTime);
  std::string error;
  auto fail = [&](const std::string& message) {
    report(inst, message);
    return kOfxStatFailed;
  };
  Shot shot;
  if (!plan_shot(inst, time, shot, error)) return fail(error);
  std::string python;
  if (!check_worker(inst, python, error)) return fail(error);

  // The parameters' digest, then the frames': within a sequence render, a later frame of the same
  // shot (same parameters) re-reads only its own Source/Matte frame and the keys and compares them
  // with the memo of the batch's full digest; otherwise (or on any difference) the whole shot is
  // read and digested again, so an upstream change on any frame is noticed.
  Hasher params;
  const Settings& s = shot.settings;
  for (const std::string& v : {s.blend, s.flow, s.quality, std::to_string(s.working_size), std::to_string(s.poisson),
                               std::to_string(s.output_alpha), std::string(s.cuts), std::to_string(shot.matte)})
    params.update(v);
  params.value(s.matte_feather);
  for (int k : shot.keys) params.value(k);
  params.update(std::string("rerender-ofx " RR_OFX_VERSION_STRING));
  const std::string settings_key = params.hex();
  auto digest_of = [](const Image& img) {
    Hasher h;
    hash_image(img, h);
    return h.hex();
  };
  const int frame = static_cast<int>(std::lround(time));
  std::optional<ShotMemo> memo;
  unsigned long long sequence = 0;
  {
    std::lock_guard<std::mutex> lock(inst.memo_mutex);
    if (inst.sequence_depth > 0) {
      sequence = inst.sequence;
      if (inst.memo && inst.memo->sequence == sequence) memo = inst.memo;
    }
  }
  if (memo && memo->settings == settings_key && memo->first == shot.first && memo->last == shot.last &&
      memo->source.count(frame) && exists(memo->result_dir)) {
    shot.bounds = memo->bounds;
    shot.depth = memo->depth;
    bool same = true;
    {
      Image img;
      same = fetch(inst.source, kOfxImageEffectSimpleSourceClipName, frame, img, error) &&
             digest_of(img) == memo->source[frame];
    }
    if (same && shot.matte) {
      Image img;
      same = fetch(inst.matte, kMatteClip, frame, img, error) && digest_of(img) == memo->matte[frame];
    }
    Hasher keys;
    for (size_t i = 0; same && i < shot.keys.size(); ++i) {
      Image img;
      same = fetch(inst.keys, kKeysClip, shot.keys[i], img, error);
      if (same) keys.update(digest_of(img));
    }
    if (same && keys.hex() == memo->keys) {
      if (!write_output(inst, shot, memo->result_dir, time, in_args, error)) return fail(error);
      if (g.message2 && g.message2->clearPersistentMessage) g.message2->clearPersistentMessage(inst.handle);
      return kOfxStatOK;
    }
    error.clear();
  }

  // the whole shot: J = the Source and Matte frames (the job folder), D = J + keys + parameters
  ShotMemo fresh;
  Hasher plates, keys;
  if (!for_each_frame(inst, shot, error, [&](const Image& img, const char* clip, int f) {
        std::string d = digest_of(img);
        if (clip == kKeysClip) {
          keys.update(d);
        } else {
          (clip == kMatteClip ? fresh.matte : fresh.source)[f] = d;
          plates.update(std::string(clip));
          plates.value(f);
          plates.update(d);
        }
        return true;
      }))
    return error.empty() ? kOfxStatFailed : fail(error);
  const std::string job_key = plates.hex();
  Hasher all;
  all.update(job_key);
  all.update(keys.hex());
  all.update(settings_key);
  const std::string root = cache_root();
  JobSpec spec;
  spec.job_dir = root + "/jobs/" + job_key;
  spec.result_dir = root + "/results/" + all.hex();
  spec.argv = worker_command(python, shot, spec.job_dir, spec.result_dir + ".partial");
  // integer plates are linearised through the sRGB curve by the plugin: the worker must undo exactly that
  if (shot.depth != kOfxBitDepthFloat) spec.env_unset = {"OCIO"};
  spec.write_inputs = [&](std::string& err) { return write_inputs(inst, shot, spec.job_dir, err); };
  if (!make_dirs(root + "/results", error)) return fail(error);

  switch (run_or_wait(inst, spec, error)) {
    case JobOutcome::Aborted: return kOfxStatFailed;  // the host stopped this render; the job resumes next time
    case JobOutcome::Failed: return error.empty() ? kOfxStatFailed : fail(error);
    case JobOutcome::Done: break;
  }
  fresh.sequence = sequence;
  fresh.settings = settings_key;
  fresh.first = shot.first;
  fresh.last = shot.last;
  fresh.keys = keys.hex();
  fresh.bounds = shot.bounds;
  fresh.depth = shot.depth;
  fresh.result_dir = spec.result_dir;
  if (sequence != 0) {
    std::lock_guard<std::mutex> lock(inst.memo_mutex);
    if (inst.sequence_depth > 0 && inst.sequence == sequence) inst.memo = std::move(fresh);
  }
  if (!write_output(inst, shot, spec.result_dir, time, in_args, error)) return fail(error);
  if (g.message2 && g.message2->clearPersistentMessage) g.message2->clearPersistentMessage(inst.handle);
  return kOfxStatOK;
}

}  // namespace rr_ofx
