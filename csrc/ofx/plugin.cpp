// The OFX entry points of "Rerender Propagate": the plugin's description, its instances, and the
// image-effect actions other than Render (render.cpp).
//
// Thread safety: fully safe (kOfxImageEffectRenderFullySafe). Render may run on any number of host
// threads and instances at once; the shared state (the job registry, job.cpp) has its own locks,
// instances are only read during Render except the worker check, which has its own mutex.
// Interface-thread actions (InstanceChanged, GetClipPreferences, ...) only read parameters: nothing
// there waits on a job or starts a process.
#include <cstring>
#include <iterator>
#include <string>

#include "host.h"
#include "instance.h"
#include "render.h"

#if defined(_WIN32)
#define RR_OFX_EXPORT extern "C" __declspec(dllexport)
#else
#define RR_OFX_EXPORT extern "C" __attribute__((visibility("default")))
#endif

namespace rr_ofx {

Suites g;

namespace {

constexpr const char* kIdentifier = "org.rerender.Propagate";
constexpr unsigned kVersionMajor = RR_OFX_VERSION_MAJOR;
constexpr unsigned kVersionMinor = RR_OFX_VERSION_MINOR;
constexpr const char* kKeysClip = "Keys";
constexpr const char* kMatteClip = "Matte";

Instance* instance_of(OfxImageEffectHandle h) {
  OfxPropertySetHandle props = nullptr;
  if (g.effect->getPropertySet(h, &props) != kOfxStatOK) return nullptr;
  return static_cast<Instance*>(get_pointer(props, kOfxPropInstanceData));
}

OfxStatus on_load() {
  // Everything below is needed to describe the effect, read its images and tell the artist what
  // went wrong; a host without them gets a clean refusal instead of a crash later.
  if (!g.host || !g.host->fetchSuite) return kOfxStatErrMissingHostFeature;
  auto fetch = [](const char* name, int version) { return g.host->fetchSuite(g.host->host, name, version); };
  g.prop = static_cast<const OfxPropertySuiteV1*>(fetch(kOfxPropertySuite, 1));
  g.effect = static_cast<const OfxImageEffectSuiteV1*>(fetch(kOfxImageEffectSuite, 1));
  g.param = static_cast<const OfxParameterSuiteV1*>(fetch(kOfxParameterSuite, 1));
  g.message = static_cast<const OfxMessageSuiteV1*>(fetch(kOfxMessageSuite, 1));
  g.message2 = static_cast<const OfxMessageSuiteV2*>(fetch(kOfxMessageSuite, 2));
  g.memory = static_cast<const OfxMemorySuiteV1*>(fetch(kOfxMemorySuite, 1));
  g.thread = static_cast<const OfxMultiThreadSuiteV1*>(fetch(kOfxMultiThreadSuite, 1));
  g.progress = static_cast<const OfxProgressSuiteV1*>(fetch(kOfxProgressSuite, 1));
  if (!g.prop || !g.effect || !g.param || !g.message) return kOfxStatErrMissingHostFeature;
  return kOfxStatOK;
}

OfxStatus describe(OfxImageEffectHandle effect) {
  OfxPropertySetHandle p = nullptr;
  if (g.effect->getPropertySet(effect, &p) != kOfxStatOK) return kOfxStatErrUnknown;
  g.prop->propSetString(p, kOfxPropLabel, 0, "Rerender Propagate");
  g.prop->propSetString(p, kOfxImageEffectPluginPropGrouping, 0, "Rerender");
  g.prop->propSetString(p, kOfxPropPluginDescription, 0,
                        "Propagates painted key frames (the Keys clip at the frames listed in Key frames) to every "
                        "frame of the Source clip by guided PatchMatch and temporal blending, as `rerender "
                        "propagate` does; runs the rerender worker out of process and caches the shot.");
  set_strings(p, kOfxImageEffectPropSupportedContexts, {kOfxImageEffectContextFilter, kOfxImageEffectContextGeneral});
  set_strings(p, kOfxImageEffectPropSupportedPixelDepths, {kOfxBitDepthByte, kOfxBitDepthShort, kOfxBitDepthFloat});
  g.prop->propSetInt(p, kOfxImageEffectPropTemporalClipAccess, 0, 1);
  g.prop->propSetString(p, kOfxImageEffectPluginRenderThreadSafety, 0, kOfxImageEffectRenderFullySafe);
  g.prop->propSetInt(p, kOfxImageEffectPluginPropHostFrameThreading, 0, 0);
  g.prop->propSetInt(p, kOfxImageEffectPropSupportsTiles, 0, 0);  // whole frames: the worker sees whole plates
  g.prop->propSetInt(p, kOfxImageEffectPropSupportsMultiResolution, 0, 0);
  g.prop->propSetInt(p, kOfxImageEffectPropSupportsMultipleClipDepths, 0, 0);
  g.prop->propSetInt(p, kOfxImageEffectPluginPropSingleInstance, 0, 0);
  // Output alpha changes the Output's components: the host asks for the clip preferences again
  g.prop->propSetString(p, kOfxImageEffectPropClipPreferencesSlaveParam, 0, param::outputAlpha);
  return kOfxStatOK;
}

void define_clip(OfxImageEffectHandle effect, const char* name, std::vector<const char*> components, bool optional,
                 bool mask, bool temporal) {
  OfxPropertySetHandle c = nullptr;
  if (g.effect->clipDefine(effect, name, &c) != kOfxStatOK || !c) return;
  set_strings(c, kOfxImageEffectPropSupportedComponents, components);
  g.prop->propSetInt(c, kOfxImageEffectPropTemporalClipAccess, 0, temporal ? 1 : 0);
  g.prop->propSetInt(c, kOfxImageEffectPropSupportsTiles, 0, 0);
  g.prop->propSetInt(c, kOfxImageClipPropOptional, 0, optional ? 1 : 0);
  if (mask) g.prop->propSetInt(c, kOfxImageClipPropIsMask, 0, 1);
}

OfxPropertySetHandle define_param(OfxParamSetHandle params, const char* type, const char* name, const char* label,
                                  const char* hint) {
  OfxPropertySetHandle p = nullptr;
  if (g.param->paramDefine(params, type, name, &p) != kOfxStatOK || !p) return nullptr;
  g.prop->propSetString(p, kOfxPropLabel, 0, label);
  g.prop->propSetString(p, kOfxParamPropHint, 0, hint);
  g.prop->propSetString(p, kOfxParamPropScriptName, 0, name);
  g.prop->propSetInt(p, kOfxParamPropAnimates, 0, 0);  // one value for the whole shot
  return p;
}

template <size_t N>
void define_choice(OfxParamSetHandle params, const char* name, const char* label, const char* hint,
                   const char* const (&options)[N]) {
  OfxPropertySetHandle p = define_param(params, kOfxParamTypeChoice, name, label, hint);
  if (!p) return;
  for (size_t i = 0; i < N; ++i) g.prop->propSetString(p, kOfxParamPropChoiceOption, static_cast<int>(i), options[i]);
  g.prop->propSetInt(p, kOfxParamPropDefault, 0, 0);
}

OfxStatus describe_in_context(OfxImageEffectHandle effect, OfxPropertySetHandle in) {
  // the filter context allows only optional clips besides Source: there Keys is optional too (an
  // unconnected Keys clip fails the render with a message)
  const bool filter = get_string(in, kOfxImageEffectPropContext) == kOfxImageEffectContextFilter;
  define_clip(effect, kOfxImageEffectSimpleSourceClipName, {kOfxImageComponentRGBA, kOfxImageComponentRGB}, false,
              false, true);
  define_clip(effect, kKeysClip, {kOfxImageComponentRGBA, kOfxImageComponentRGB}, filter, false, true);
  define_clip(effect, kMatteClip, {kOfxImageComponentRGBA, kOfxImageComponentRGB, kOfxImageComponentAlpha}, true,
              true, true);
  define_clip(effect, kOfxImageEffectOutputClipName, {kOfxImageComponentRGBA, kOfxImageComponentRGB}, false, false,
              false);

  OfxParamSetHandle params = nullptr;
  if (g.effect->getParamSet(effect, &params) != kOfxStatOK) return kOfxStatErrUnknown;
  if (auto p = define_param(params, kOfxParamTypeString, param::keyFrames, "Key frames",
                            "Host frame numbers of the key frames, e.g. 1001,1011,1020: the Keys clip at these "
                            "frames holds the painted keys")) {
    g.prop->propSetString(p, kOfxParamPropDefault, 0, "");
    g.prop->propSetString(p, kOfxParamPropStringMode, 0, kOfxParamStringIsSingleLine);
  }
  define_choice(params, param::blend, "Blend",
                "Blending of the two passes: soft (default, steadier), select (the paper's selection mask + "
                "histogram-preserving blend) or linear",
                kBlendOptions);
  if (auto p = define_param(params, kOfxParamTypeInteger, param::workingSize, "Working size",
                            "Working resolution: short side in pixels, rounded to a multiple of 8; 0 = the "
                            "source's size")) {
    g.prop->propSetInt(p, kOfxParamPropDefault, 0, 0);
    g.prop->propSetInt(p, kOfxParamPropMin, 0, 0);
    g.prop->propSetInt(p, kOfxParamPropMax, 0, 8192);
    g.prop->propSetInt(p, kOfxParamPropDisplayMin, 0, 0);
    g.prop->propSetInt(p, kOfxParamPropDisplayMax, 0, 4096);
  }
  define_choice(params, param::flow, "Optical flow", "dis (fast, default) or deepflow (slower, more accurate)",
                kFlowOptions);
  define_choice(params, param::quality, "Quality",
                "standard: rerender's defaults; draft: fewer PatchMatch and search-vote iterations for a fast "
                "preview",
                kQualityOptions);
  if (auto p = define_param(params, kOfxParamTypeBoolean, param::poisson, "Poisson blending",
                            "Screened Poisson (gradient-domain) blending after the blend")) {
    g.prop->propSetInt(p, kOfxParamPropDefault, 0, 0);
  }
  if (auto p = define_param(params, kOfxParamTypeDouble, param::matteFeather, "Matte feather",
                            "Soft edge of the matte when compositing over the plate, in pixels")) {
    g.prop->propSetDouble(p, kOfxParamPropDefault, 0, 0.0);
    g.prop->propSetDouble(p, kOfxParamPropMin, 0, 0.0);
    g.prop->propSetDouble(p, kOfxParamPropMax, 0, 256.0);
    g.prop->propSetDouble(p, kOfxParamPropDisplayMin, 0, 0.0);
    g.prop->propSetDouble(p, kOfxParamPropDisplayMax, 0, 32.0);
    g.prop->propSetString(p, kOfxParamPropDoubleType, 0, kOfxParamDoubleTypePlain);
  }
  if (auto p = define_param(params, kOfxParamTypeString, param::cuts, "Shot cuts",
                            "Empty: none; auto: detect them; or the host frame numbers of later shots' first "
                            "frames. Nothing is propagated across a cut: every shot needs a key frame")) {
    g.prop->propSetString(p, kOfxParamPropDefault, 0, "");
    g.prop->propSetString(p, kOfxParamPropStringMode, 0, kOfxParamStringIsSingleLine);
  }
  if (auto p = define_param(params, kOfxParamTypeBoolean, param::outputAlpha, "Output alpha",
                            "RGBA output with the (feathered) matte as alpha, premultiplied, instead of the "
                            "restyle composited over the plate")) {
    g.prop->propSetInt(p, kOfxParamPropDefault, 0, 0);
  }
  return kOfxStatOK;
}

OfxStatus create_instance(OfxImageEffectHandle effect) {
  auto* inst = new Instance();
  inst->handle = effect;
  g.effect->clipGetHandle(effect, kOfxImageEffectSimpleSourceClipName, &inst->source, nullptr);
  g.effect->clipGetHandle(effect, kKeysClip, &inst->keys, nullptr);
  g.effect->clipGetHandle(effect, kMatteClip, &inst->matte, nullptr);
  g.effect->clipGetHandle(effect, kOfxImageEffectOutputClipName, &inst->output, nullptr);
  g.effect->getParamSet(effect, &inst->params);
  OfxPropertySetHandle props = nullptr;
  if (g.effect->getPropertySet(effect, &props) != kOfxStatOK || !inst->source || !inst->output || !inst->params) {
    delete inst;
    return kOfxStatErrUnknown;
  }
  inst->filter_context = get_string(props, kOfxImageEffectPropContext) == kOfxImageEffectContextFilter;
  g.prop->propSetPointer(props, kOfxPropInstanceData, 0, inst);
  return kOfxStatOK;
}

OfxStatus destroy_instance(OfxImageEffectHandle effect) {
  Instance* inst = instance_of(effect);
  OfxPropertySetHandle props = nullptr;
  if (g.effect->getPropertySet(effect, &props) == kOfxStatOK) g.prop->propSetPointer(props, kOfxPropInstanceData, 0, nullptr);
  delete inst;
  return kOfxStatOK;
}

OfxStatus clip_preferences(Instance& inst, OfxPropertySetHandle out) {
  OfxPropertySetHandle src = nullptr;
  g.effect->clipGetPropertySet(inst.source, &src);
  std::string components = get_string(src, kOfxImageEffectPropComponents, 0, kOfxImageComponentRGBA);
  Settings s = inst.settings(0);
  // the filter context keeps the Source's components on the Output (render then refuses Output
  // alpha on an RGB Source with a message); the general context gives RGBA for Output alpha
  if (!inst.filter_context && s.output_alpha && components != kOfxImageComponentRGBA)
    g.prop->propSetString(out, (std::string(kOfxClipPrefComponents) + kOfxImageEffectOutputClipName).c_str(), 0,
                          kOfxImageComponentRGBA);
  // with the matte as alpha the output is premultiplied (as rerender's EXR); otherwise it keeps the
  // Source's alpha and its premultiplication (the host's default)
  if (s.output_alpha) g.prop->propSetString(out, kOfxImageEffectPropPreMultiplication, 0, kOfxImagePreMultiplied);
  return kOfxStatOK;
}

OfxStatus region_of_definition(Instance& inst, OfxPropertySetHandle in, OfxPropertySetHandle out) {
  OfxRectD rod{};
  if (g.effect->clipGetRegionOfDefinition(inst.source, get_double(in, kOfxPropTime), &rod) != kOfxStatOK)
    return kOfxStatReplyDefault;
  g.prop->propSetDoubleN(out, kOfxImageEffectPropRegionOfDefinition, 4, &rod.x1);
  return kOfxStatOK;
}

OfxStatus regions_of_interest(Instance& inst, OfxPropertySetHandle in, OfxPropertySetHandle out) {
  // whole frames of every input, whatever window is asked for
  OfxTime t = get_double(in, kOfxPropTime);
  for (auto [clip, name] : {std::pair{inst.source, kOfxImageEffectSimpleSourceClipName}, std::pair{inst.keys, kKeysClip},
                            std::pair{inst.matte, kMatteClip}}) {
    OfxRectD rod{};
    if (!clip || g.effect->clipGetRegionOfDefinition(clip, t, &rod) != kOfxStatOK) continue;
    g.prop->propSetDoubleN(out, (std::string(kOfxClipRoIPrefix) + name).c_str(), 4, &rod.x1);
  }
  return kOfxStatOK;
}

OfxStatus frames_needed(Instance& inst, OfxPropertySetHandle out) {
  // the whole shot: every source and matte frame, and the Keys clip at the key times
  OfxRangeD range = source_range(inst);
  const double whole[2] = {range.min, range.max};
  g.prop->propSetDoubleN(out, (std::string(kOfxClipFrameRangePrefix) + kOfxImageEffectSimpleSourceClipName).c_str(), 2,
                         whole);
  if (inst.connected(inst.matte))
    g.prop->propSetDoubleN(out, (std::string(kOfxClipFrameRangePrefix) + kMatteClip).c_str(), 2, whole);
  std::vector<int> keys;
  std::string error;
  if (parse_frame_list(inst.settings(0).key_frames, keys, error) && !keys.empty()) {
    std::vector<double> ranges;
    for (int k : keys) {
      ranges.push_back(k);
      ranges.push_back(k);
    }
    g.prop->propSetDoubleN(out, (std::string(kOfxClipFrameRangePrefix) + kKeysClip).c_str(),
                           static_cast<int>(ranges.size()), ranges.data());
  }
  return kOfxStatOK;
}

OfxStatus main_entry(const char* action, const void* handle, OfxPropertySetHandle in, OfxPropertySetHandle out) {
  if (!action) return kOfxStatErrBadHandle;
  auto effect = static_cast<OfxImageEffectHandle>(const_cast<void*>(handle));
  if (!std::strcmp(action, kOfxActionLoad)) return on_load();
  if (!g.prop || !g.effect || !g.param) return kOfxStatErrMissingHostFeature;  // Load refused or not called
  if (!std::strcmp(action, kOfxActionUnload)) return kOfxStatOK;
  if (!std::strcmp(action, kOfxActionDescribe)) return describe(effect);
  if (!std::strcmp(action, kOfxImageEffectActionDescribeInContext)) return describe_in_context(effect, in);
  if (!std::strcmp(action, kOfxActionCreateInstance)) return create_instance(effect);
  if (!std::strcmp(action, kOfxActionDestroyInstance)) return destroy_instance(effect);
  Instance* inst = instance_of(effect);
  if (!inst) return kOfxStatReplyDefault;
  if (!std::strcmp(action, kOfxImageEffectActionRender)) return render(*inst, in);
  if (!std::strcmp(action, kOfxImageEffectActionGetClipPreferences)) return clip_preferences(*inst, out);
  if (!std::strcmp(action, kOfxImageEffectActionGetRegionOfDefinition)) return region_of_definition(*inst, in, out);
  if (!std::strcmp(action, kOfxImageEffectActionGetRegionsOfInterest)) return regions_of_interest(*inst, in, out);
  if (!std::strcmp(action, kOfxImageEffectActionGetFramesNeeded)) return frames_needed(*inst, out);
  // A sequence render: the host renders a batch of frames with its inputs unchanged, so the batch's
  // later frames only check their own frame and the keys against the first one's digest. Outside
  // one (interactive renders) and after PurgeCaches every render digests the whole shot.
  if (!std::strcmp(action, kOfxImageEffectActionBeginSequenceRender)) {
    std::lock_guard<std::mutex> lock(inst->memo_mutex);
    if (inst->sequence_depth++ == 0) ++inst->sequence;
    return kOfxStatOK;
  }
  if (!std::strcmp(action, kOfxImageEffectActionEndSequenceRender)) {
    std::lock_guard<std::mutex> lock(inst->memo_mutex);
    if (inst->sequence_depth > 0 && --inst->sequence_depth == 0) inst->memo.reset();
    return kOfxStatOK;
  }
  if (!std::strcmp(action, kOfxActionPurgeCaches)) {
    std::lock_guard<std::mutex> lock(inst->memo_mutex);
    inst->memo.reset();
    return kOfxStatOK;
  }
  // InstanceChanged needs nothing: a changed parameter changes the job's digest at the next render
  // (no work on the interface thread). IsIdentity: never (every frame is restyled).
  return kOfxStatReplyDefault;
}

void set_host(OfxHost* host) { g.host = host; }

OfxPlugin g_plugin = {kOfxImageEffectPluginApi, kOfxImageEffectPluginApiVersion, kIdentifier, kVersionMajor,
                      kVersionMinor, set_host, main_entry};

}  // namespace

Settings Instance::settings(OfxTime time) const {
  Settings s;
  auto handle = [&](const char* name) {
    OfxParamHandle h = nullptr;
    g.param->paramGetHandle(params, name, &h, nullptr);
    return h;
  };
  auto choice = [&](const char* name, const auto& options, std::string& out) {
    int i = 0;
    if (OfxParamHandle h = handle(name); h && g.param->paramGetValueAtTime(h, time, &i) == kOfxStatOK && i >= 0 &&
                                         i < static_cast<int>(std::size(options)))
      out = options[i];
  };
  if (OfxParamHandle h = handle(param::keyFrames)) {
    char* v = nullptr;
    if (g.param->paramGetValueAtTime(h, time, &v) == kOfxStatOK && v) s.key_frames = v;
  }
  if (OfxParamHandle h = handle(param::cuts)) {
    char* v = nullptr;
    if (g.param->paramGetValueAtTime(h, time, &v) == kOfxStatOK && v) s.cuts = v;
  }
  choice(param::blend, kBlendOptions, s.blend);
  choice(param::flow, kFlowOptions, s.flow);
  choice(param::quality, kQualityOptions, s.quality);
  int b = 0;
  if (OfxParamHandle h = handle(param::workingSize)) g.param->paramGetValueAtTime(h, time, &s.working_size);
  if (OfxParamHandle h = handle(param::poisson); h && g.param->paramGetValueAtTime(h, time, &b) == kOfxStatOK)
    s.poisson = b != 0;
  b = 0;
  if (OfxParamHandle h = handle(param::outputAlpha); h && g.param->paramGetValueAtTime(h, time, &b) == kOfxStatOK)
    s.output_alpha = b != 0;
  if (OfxParamHandle h = handle(param::matteFeather)) g.param->paramGetValueAtTime(h, time, &s.matte_feather);
  return s;
}

bool Instance::connected(OfxImageClipHandle clip) const {
  if (!clip) return false;
  OfxPropertySetHandle p = nullptr;
  if (g.effect->clipGetPropertySet(clip, &p) != kOfxStatOK) return false;
  return get_int(p, kOfxImageClipPropConnected, 0, 0) != 0;
}

}  // namespace rr_ofx

RR_OFX_EXPORT int OfxGetNumberOfPlugins(void) { return 1; }

RR_OFX_EXPORT OfxPlugin* OfxGetPlugin(int nth) { return nth == 0 ? &rr_ofx::g_plugin : nullptr; }
