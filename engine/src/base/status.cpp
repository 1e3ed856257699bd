#include "rapport/engine/status.h"

namespace rapport {

std::string Status::ToString() const {
  switch (code_) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument: " + message_;
    case StatusCode::kNotFound: return "not found: " + message_;
    case StatusCode::kIoError: return "io error: " + message_;
    case StatusCode::kCorruption: return "corruption: " + message_;
    case StatusCode::kUnavailable: return "unavailable: " + message_;
  }
  return message_;
}

}  // namespace rapport
