#include "wire/delimited.hpp"

#include <google/protobuf/io/coded_stream.h>

#include <climits>
#include <cstdint>

namespace tio::wire {

using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;

std::optional<std::string> delimited(const google::protobuf::MessageLite& message) {
    const std::size_t size = message.ByteSizeLong();
    if (size > INT_MAX) return std::nullopt;
    const auto length = static_cast<std::uint32_t>(size);
    std::string out(CodedOutputStream::VarintSize32(length) + size, '\0');
    auto* at = reinterpret_cast<std::uint8_t*>(out.data());
    at = CodedOutputStream::WriteVarint32ToArray(length, at);
    // ByteSizeLong() above cached the sizes this serialization walks by.
    message.SerializeWithCachedSizesToArray(at);
    return out;
}

bool readDelimited(google::protobuf::io::ZeroCopyInputStream& in, google::protobuf::MessageLite& message) {
    // One coded stream per record: its destructor hands what it read ahead back to
    // `in`, so the next call starts exactly at the next record.
    CodedInputStream coded(&in);
    std::uint32_t length = 0;
    if (!coded.ReadVarint32(&length) || length > INT_MAX) return false;
    const auto limit = coded.PushLimit(static_cast<int>(length));
    if (!message.ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage()) return false;
    coded.PopLimit(limit);
    return true;
}

}  // namespace tio::wire
