#include "wire/message_text.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>

#include <cstddef>
#include <memory>

namespace tio::wire {

// Written by proto/embed_descriptors.cmake: protoc's descriptor set of tio.v1.
extern const unsigned char kDescriptorSet[];
extern const std::size_t kDescriptorSetSize;

namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::DynamicMessageFactory;
using google::protobuf::Message;

// Built once; the descriptors and the factory live as long as the process.
struct Reflection {
    DescriptorPool pool;
    std::unique_ptr<DynamicMessageFactory> factory;

    Reflection() {
        google::protobuf::FileDescriptorSet set;
        if (set.ParseFromArray(kDescriptorSet, static_cast<int>(kDescriptorSetSize))) {
            for (const auto& file : set.file()) (void)pool.BuildFile(file);
        }
        factory = std::make_unique<DynamicMessageFactory>(&pool);
    }
};

const Reflection& reflection() {
    static const Reflection r;
    return r;
}

// A dynamic copy of `message` with the same bytes, or null if its type is unknown.
std::unique_ptr<Message> reflect(const google::protobuf::MessageLite& message) {
    const Reflection& r = reflection();
    const auto* type = r.pool.FindMessageTypeByName(message.GetTypeName());
    if (type == nullptr) return nullptr;
    std::unique_ptr<Message> copy(r.factory->GetPrototype(type)->New());
    if (!copy->ParseFromString(message.SerializeAsString())) return nullptr;
    return copy;
}

}  // namespace

std::string toText(const google::protobuf::MessageLite& message) {
    const auto copy = reflect(message);
    return copy ? copy->DebugString() : "<" + message.GetTypeName() + ": no descriptor>\n";
}

std::optional<std::string> toJson(const google::protobuf::MessageLite& message) {
    const auto copy = reflect(message);
    if (!copy) return std::nullopt;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.always_print_primitive_fields = true;
    std::string json;
    if (!google::protobuf::util::MessageToJsonString(*copy, &json, options).ok()) return std::nullopt;
    return json;
}

}  // namespace tio::wire
