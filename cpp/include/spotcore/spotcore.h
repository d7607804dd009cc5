// Umbrella header of the spotcore C++ core.
#pragma once
#include "spotcore/types.h"
#include "spotcore/filter.h"
#include "spotcore/detect.h"
#include "spotcore/fit.h"
#include "spotcore/localize.h"

namespace spotcore {
inline const char* version() { return "0.1.0"; }
}
