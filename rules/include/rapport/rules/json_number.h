// How a plain YAML scalar becomes a JSON number in an action payload (and in
// a campaign test's expectations, which must read payloads the same way).
#pragma once

#include <string>

namespace rapport::rules {

// True when `s` is a number in the grammar of RFC 8259 and finite as a
// double. The literal is copied into the action as it is written, so
// anything YAML or strtod accept beyond it (`007`, `1.`, `0x10`, `-inf`,
// `.5`, `+1`) would make the action invalid JSON, and a number too large
// for a double (`1e999`) is refused too: JSON readers reject it.
bool IsJsonNumber(const std::string& s);

}  // namespace rapport::rules
