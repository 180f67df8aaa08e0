#include "render.h"

namespace rr_ofx {

OfxRangeD source_range(const Instance& inst) {
  OfxPropertySetHandle p = nullptr;
  g.effect->clipGetPropertySet(inst.source, &p);
  return OfxRangeD{get_double(p, kOfxImageEffectPropFrameRange, 0), get_double(p, kOfxImageEffectPropFrameRange, 1)};
}

bool parse_frame_list(const std::string& text, std::vector<int>& frames, std::string& error) {
  frames.clear();
  return true;
}

OfxStatus render(Instance& inst, OfxPropertySetHandle in_args) { return kOfxStatFailed; }

}  // namespace rr_ofx
