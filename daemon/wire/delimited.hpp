#pragma once

// Length-delimited protobuf records (a varint length, then the message): the form
// of the audit log and the memory journal. protobuf's own helpers for it
// (util/delimited_message_util.h) are in the full runtime, which the daemon does
// not link (proto/tio/v1/audit_record.proto says why); these write and read the
// same bytes with the lite runtime's coded streams.

#include <google/protobuf/io/zero_copy_stream.h>
#include <google/protobuf/message_lite.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace tio::wire {

// `message` as one record, to be written with one write (a record is all there or
// not at all); nullopt if it is too large to be delimited (over 2 GiB).
[[nodiscard]] std::optional<std::string> delimited(const google::protobuf::MessageLite& message);

// The bytes `message` takes as one record; nullopt if it cannot be delimited. Caches
// the sizes writeDelimited() walks by.
[[nodiscard]] std::optional<std::size_t> delimitedSize(const google::protobuf::MessageLite& message);
// Writes `message` as one record at `at`, which has room for delimitedSize() bytes
// (called just before, with the message unchanged since).
void writeDelimited(const google::protobuf::MessageLite& message, std::uint8_t* at);

// Reads the next record of `in` into `message`. False at the end of the stream and
// at a record that is cut short or does not parse: nothing after it is trusted.
[[nodiscard]] bool readDelimited(google::protobuf::io::ZeroCopyInputStream& in, google::protobuf::MessageLite& message);

}  // namespace tio::wire
