#include "wire/delimited.hpp"

#include <google/protobuf/io/coded_stream.h>

#include <climits>
#include <cstdint>

namespace tio::wire {

using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;

std::optional<std::size_t> delimitedSize(const google::protobuf::MessageLite& message) {
    const std::size_t size = message.ByteSizeLong();
    if (size > INT_MAX) return std::nullopt;
    return CodedOutputStream::VarintSize32(static_cast<std::uint32_t>(size)) + size;
}

void writeDelimited(const google::protobuf::MessageLite& message, std::uint8_t* at) {
    // delimitedSize() cached the sizes: GetCachedSize() and the serialization walk them.
    at = CodedOutputStream::WriteVarint32ToArray(static_cast<std::uint32_t>(message.GetCachedSize()), at);
    message.SerializeWithCachedSizesToArray(at);
}

std::optional<std::string> delimited(const google::protobuf::MessageLite& message) {
    const auto size = delimitedSize(message);
    if (!size) return std::nullopt;
    std::string out(*size, '\0');
    writeDelimited(message, reinterpret_cast<std::uint8_t*>(out.data()));
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
