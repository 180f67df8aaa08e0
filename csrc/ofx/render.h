// The Render action and what the other actions share with it.
#pragma once

#include <string>
#include <vector>

#include "instance.h"

namespace rr_ofx {

// Render one frame: the first request for a shot runs the job (job.h), later ones read its frames.
OfxStatus render(Instance& inst, OfxPropertySetHandle in_args);

// The Source clip's frame range (whole frames, inclusive).
OfxRangeD source_range(const Instance& inst);

// "1001, 1011,1020" -> sorted unique frame numbers; false with `error` set on bad text.
bool parse_frame_list(const std::string& text, std::vector<int>& frames, std::string& error);

}  // namespace rr_ofx
