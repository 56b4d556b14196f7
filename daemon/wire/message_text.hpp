#pragma once

// The tio.v1 messages as text and JSON, for tioctl and the tests. The generated
// classes are lite and carry no descriptors (proto/tio/v1/audit_record.proto says
// why); these print a dynamic copy of the message built from the descriptor set
// protoc writes from the same .proto files (proto/CMakeLists.txt). This needs the
// full protobuf runtime, so the daemon never links it.

#include <google/protobuf/message_lite.h>

#include <optional>
#include <string>

namespace tio::wire {

// protobuf's text format of `message` (what Message::DebugString gives); a line
// naming the type if the descriptor set does not know it.
[[nodiscard]] std::string toText(const google::protobuf::MessageLite& message);

// JSON with every field printed (zeros too) and indented; nullopt if the descriptor
// set does not know the message's type.
[[nodiscard]] std::optional<std::string> toJson(const google::protobuf::MessageLite& message);

}  // namespace tio::wire
