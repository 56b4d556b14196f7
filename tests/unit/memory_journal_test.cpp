#include "persist/memory_journal.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

namespace tio::persist {
namespace {

v1::JournalEntry intentEntry(std::uint64_t seq, int ranges) {
    v1::JournalEntry e;
    e.set_seq(seq);
    auto* intent = e.mutable_intent();
    intent->set_kind(v1::MemoryIntent::CONVERT);
    for (int i = 0; i < ranges; ++i) {
        auto* r = intent->add_ranges();
        r->set_gpa(0x100000000ULL + 4096ULL * static_cast<std::uint64_t>(i));
        r->set_size(4096);
        r->set_to("shared");
    }
    return e;
}

v1::JournalEntry doneEntry(std::uint64_t seq, std::uint64_t of) {
    v1::JournalEntry e;
    e.set_seq(seq);
    e.set_done(of);
    return e;
}

std::uint64_t fileSize(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

TEST(MemoryJournal, RecordsReadBackInOrderAndTheZerosAfterThemEndIt) {
    auto journal = MemoryJournal::create();
    ASSERT_TRUE(journal);
    EXPECT_EQ(fileSize(journal->fd()), MemoryJournal::kInitialCapacity) << "sized once, so appends are copies";
    EXPECT_TRUE(MemoryJournal::read(journal->fd()).entries.empty());
    ASSERT_TRUE(journal->append(intentEntry(1, 3)));
    ASSERT_TRUE(journal->append(doneEntry(2, 1)));
    const auto contents = MemoryJournal::read(journal->fd());
    ASSERT_EQ(contents.entries.size(), 2U);
    EXPECT_EQ(contents.entries[0].intent().ranges_size(), 3);
    EXPECT_EQ(contents.entries[1].done(), 1U);
    EXPECT_EQ(contents.end, journal->bytes());
    EXPECT_FALSE(journal->append(v1::JournalEntry())) << "an empty record would read as the end";
    EXPECT_EQ(MemoryJournal::read(journal->fd()).entries.size(), 2U);
}

TEST(MemoryJournal, ClearLeavesZerosAndTheSameFile) {
    auto journal = MemoryJournal::create();
    ASSERT_TRUE(journal && journal->append(intentEntry(1, 1)) && journal->append(doneEntry(2, 1)));
    journal->clear();
    EXPECT_EQ(journal->bytes(), 0U);
    EXPECT_TRUE(MemoryJournal::read(journal->fd()).entries.empty());
    EXPECT_EQ(fileSize(journal->fd()), MemoryJournal::kInitialCapacity);
    ASSERT_TRUE(journal->append(doneEntry(3, 1)));
    const auto contents = MemoryJournal::read(journal->fd());
    ASSERT_EQ(contents.entries.size(), 1U);
    EXPECT_EQ(contents.entries[0].seq(), 3U);
}

TEST(MemoryJournal, GrowsPastItsCapacityForALargeOperation) {
    auto journal = MemoryJournal::create();
    ASSERT_TRUE(journal);
    std::uint64_t seq = 0;
    while (journal->bytes() < MemoryJournal::kInitialCapacity) ASSERT_TRUE(journal->append(intentEntry(++seq, 512)));
    EXPECT_GT(fileSize(journal->fd()), MemoryJournal::kInitialCapacity);
    const auto contents = MemoryJournal::read(journal->fd());
    EXPECT_EQ(contents.entries.size(), seq);
    EXPECT_EQ(contents.end, journal->bytes());
}

// A crash in the middle of a copy leaves a record cut short: reading stops before
// it, and a restarted daemon continuing the journal zeroes it, so its remains are
// never read as a record after the new ones.
TEST(MemoryJournal, AdoptingZeroesARecordACrashCutShort) {
    auto journal = MemoryJournal::create();
    ASSERT_TRUE(journal && journal->append(intentEntry(1, 1)) && journal->append(doneEntry(2, 1)));
    const std::uint64_t good = journal->bytes();
    ASSERT_TRUE(journal->append(intentEntry(3, 40)));
    const std::uint64_t torn_end = journal->bytes();
    // The torn record: its length and the first half of its bytes, then zeros.
    const std::uint64_t half = good + (torn_end - good) / 2;
    const std::string zeros(torn_end - half, '\0');
    ASSERT_EQ(::pwrite(journal->fd(), zeros.data(), zeros.size(), static_cast<off_t>(half)),
              static_cast<ssize_t>(zeros.size()));
    auto read = MemoryJournal::read(journal->fd());
    ASSERT_EQ(read.entries.size(), 2U);
    EXPECT_EQ(read.end, good);

    auto copy = UniqueFd::duplicateOf(journal->fd());
    ASSERT_TRUE(copy);
    journal.reset();
    auto adopted = MemoryJournal::adopt(std::move(*copy), read.end);
    ASSERT_TRUE(adopted);
    EXPECT_EQ(adopted->bytes(), good);
    ASSERT_TRUE(adopted->append(doneEntry(4, 1)));
    read = MemoryJournal::read(adopted->fd());
    ASSERT_EQ(read.entries.size(), 3U);
    EXPECT_EQ(read.entries[2].seq(), 4U);
    std::string rest(torn_end - read.end, 'x');
    ASSERT_EQ(::pread(adopted->fd(), rest.data(), rest.size(), static_cast<off_t>(read.end)),
              static_cast<ssize_t>(rest.size()));
    EXPECT_EQ(rest, std::string(rest.size(), '\0')) << "nothing of the torn record is left";
}

}  // namespace
}  // namespace tio::persist
