#pragma once
// Owners for sd-bus and sd-event objects (what systemd's _cleanup_ does): each
// handle is released by exactly one owner, on every path out, exceptions included.
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <memory>

namespace tio::dbus {

template <auto Unref>
struct SdUnref {
    template <typename T>
    void operator()(T* p) const noexcept {
        (void)Unref(p);
    }
};

using MessagePtr = std::unique_ptr<sd_bus_message, SdUnref<sd_bus_message_unref>>;
using CredsPtr = std::unique_ptr<sd_bus_creds, SdUnref<sd_bus_creds_unref>>;
using BusPtr = std::unique_ptr<sd_bus, SdUnref<sd_bus_flush_close_unref>>;
using EventPtr = std::unique_ptr<sd_event, SdUnref<sd_event_unref>>;
using EventSourcePtr = std::unique_ptr<sd_event_source, SdUnref<sd_event_source_unref>>;

}  // namespace tio::dbus
