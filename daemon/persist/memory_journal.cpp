#include "persist/memory_journal.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <google/protobuf/io/zero_copy_stream_impl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "wire/delimited.hpp"

namespace tio::persist {

std::optional<MemoryJournal> MemoryJournal::create() {
    UniqueFd fd(::memfd_create("tio-journal", MFD_CLOEXEC));
    if (!fd) return std::nullopt;
    MemoryJournal journal(std::move(fd), 0);
    if (!journal.reserve(kInitialCapacity)) return std::nullopt;
    return journal;
}

std::optional<MemoryJournal> MemoryJournal::adopt(UniqueFd fd, std::uint64_t end) {
    // Cutting the file at `end` and growing it again zeroes whatever followed.
    if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(end)) < 0) return std::nullopt;
    MemoryJournal journal(std::move(fd), end);
    if (!journal.reserve(std::max(kInitialCapacity, end + kInitialCapacity / 2))) return std::nullopt;
    return journal;
}

bool MemoryJournal::reserve(std::uint64_t size) {
    if (map_ && map_.length() >= size) return true;
    if (size > static_cast<std::uint64_t>(SSIZE_MAX) || ::ftruncate(fd_.get(), static_cast<off_t>(size)) < 0) {
        return false;
    }
    void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    if (base == MAP_FAILED) return false;
    map_ = SharedMapping(base, size);
    return true;
}

bool MemoryJournal::append(const google::protobuf::MessageLite& record) {
    const auto need = wire::delimitedSize(record);
    // An empty record would read as the journal's end.
    if (!need || *need <= 1) return false;
    // Growing is rare: the fold line is past the file's size (the persister folds when
    // the journal is as large as the last snapshot), or an operation of very many
    // ranges crosses it. Doubling keeps the remaps few.
    if (end_ + *need > map_.length() && !reserve(std::max({kInitialCapacity, 2 * map_.length(), end_ + *need}))) {
        return false;
    }
    wire::writeDelimited(record, reinterpret_cast<std::uint8_t*>(map_.address()) + end_);
    end_ += *need;
    return true;
}

void MemoryJournal::clear() {
    // Cutting the file to nothing and growing it back zeroes it and gives its pages
    // back, and the mapping stays valid. Should the file not shrink, the records are
    // zeroed in place; should it shrink and not grow back, the mapping goes (a copy
    // past the file's end would fault) and the next append maps the file again.
    if (::ftruncate(fd_.get(), 0) < 0) {
        if (map_) std::memset(reinterpret_cast<void*>(map_.address()), 0, end_);
    } else if (::ftruncate(fd_.get(), static_cast<off_t>(map_.length())) < 0) {
        map_.reset();
    }
    end_ = 0;
}

MemoryJournal::Contents MemoryJournal::read(int fd) {
    Contents out;
    google::protobuf::io::FileInputStream in(fd);
    (void)::lseek(fd, 0, SEEK_SET);
    for (;;) {
        v1::JournalEntry e;
        if (!wire::readDelimited(in, e) || e.seq() == 0) break;
        out.entries.push_back(std::move(e));
        out.end = static_cast<std::uint64_t>(in.ByteCount());
    }
    return out;
}

}  // namespace tio::persist
